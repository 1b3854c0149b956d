//! Settings through the binary: every environment name, the precedence
//! order, `--print-config` sources, `--check-config`, and bad values.

use std::process::Output;

use crate::support::{Server, command, temp_dir};

fn run(name: &str, args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> Output {
    let dir = temp_dir(name);
    if let Some(toml) = file {
        std::fs::write(dir.join("ferricorn.toml"), toml).expect("write config");
    }
    let out = command(&dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// The `--print-config` line of `key`.
fn line(out: &Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
        .to_owned()
}

fn assert_setting(out: &Output, key: &str, value: &str, source: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = line(out, key);
    assert!(
        l.starts_with(&format!("{key} = {value}")) && l.ends_with(&format!("# {source}")),
        "{l}"
    );
}

#[test]
fn each_environment_name_is_read() {
    let p = ["--print-config"];
    let cases: &[(&str, &str, &str, &str)] = &[
        ("WEB_CONCURRENCY", "3", "workers", "3"),
        ("GUNICORN_WORKERS", "4", "workers", "4"),
        ("UVICORN_WORKERS", "5", "workers", "5"),
        ("FERRICORN_WORKERS", "6", "workers", "6"),
        ("PORT", "9100", "bind", "[\"0.0.0.0:9100\"]"),
        ("UVICORN_PORT", "9101", "bind", "[\"127.0.0.1:9101\"]"),
        ("GUNICORN_LOG_LEVEL", "WARNING", "log_level", "\"WARNING\""),
        ("UVICORN_LOG_LEVEL", "debug", "log_level", "\"debug\""),
        ("FERRICORN_GRACEFUL_TIMEOUT", "7", "graceful_timeout", "7"),
        ("FERRICORN_KEEP_ALIVE", "2.5", "keep_alive", "2.5"),
        (
            "FERRICORN_LIMIT_REQUEST_LINE",
            "100",
            "limit_request_line",
            "100",
        ),
        (
            "FORWARDED_ALLOW_IPS",
            "10.0.0.0/8,*",
            "forwarded_allow_ips",
            "[\"10.0.0.0/8\", \"*\"]",
        ),
    ];
    for (name, value, key, shown) in cases {
        let out = run("env-names", &p, &[(name, value)], None);
        assert_setting(&out, key, shown, &format!("env {name}"));
    }
    let out = run(
        "uvicorn-host",
        &p,
        &[("UVICORN_HOST", "127.0.0.2"), ("UVICORN_PORT", "9102")],
        None,
    );
    assert_setting(
        &out,
        "bind",
        "[\"127.0.0.2:9102\"]",
        "env UVICORN_HOST + env UVICORN_PORT",
    );
    let out = run(
        "cmd-args",
        &p,
        &[("GUNICORN_CMD_ARGS", "--workers=7 --keep-alive 9")],
        None,
    );
    assert_setting(&out, "workers", "7", "env GUNICORN_CMD_ARGS");
    assert_setting(&out, "keep_alive", "9", "env GUNICORN_CMD_ARGS");
    // A line copied from a Gunicorn deployment starts, with a warning for
    // each of Gunicorn's own flags.
    let out = run(
        "cmd-args-gunicorn",
        &p,
        &[(
            "GUNICORN_CMD_ARGS",
            "-k uvicorn.workers.UvicornWorker --preload -w 3 --log-file=-",
        )],
        None,
    );
    assert_setting(&out, "workers", "3", "env GUNICORN_CMD_ARGS");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# warning: env GUNICORN_CMD_ARGS: `-k uvicorn.workers.UvicornWorker` has no effect in ferricorn"),
        "{stdout}"
    );
    assert!(stdout.contains("`--preload` has no effect"), "{stdout}");
    assert!(
        stdout.contains("`--log-file -` is read as `--error-logfile`"),
        "{stdout}"
    );
}

/// The values of a `--print-config` report, without its comments.
fn values(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" # ").next().unwrap_or(l).trim_end().to_owned())
        .collect()
}

#[test]
fn print_config_reads_back_with_c() {
    let given = run(
        "print-given",
        &[
            "--print-config",
            "--host",
            "0.0.0.0",
            "--port",
            "9001",
            "-w",
            "3",
        ],
        &[
            ("FERRICORN_ACCESS_LOGFORMAT", r#"%(h)s "%(r)s" %({x-id}i)s"#),
            ("FERRICORN_KEEP_ALIVE", "2.5"),
            ("FERRICORN_RELOAD_PATH", "static,templates"),
        ],
        Some("backlog = 64\nroot_path = \"/api\"\n"),
    );
    assert_eq!(given.status.code(), Some(0));
    let dir = temp_dir("print-read-back");
    let file = dir.join("printed.toml");
    std::fs::write(&file, &given.stdout).expect("write");
    let read = command(&dir)
        .args(["--print-config", "-c"])
        .arg(&file)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        read.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(values(&read), values(&given));
    assert!(line(&read, "bind").starts_with("bind = [\"0.0.0.0:9001\"]"));
}

#[test]
fn precedence_defaults_file_env_cmd_args_cli() {
    let p = ["--print-config"];
    let file = Some("workers = 2\nbacklog = 64\n");
    assert_setting(
        &run("prec0", &p, &[], None),
        "workers",
        "0 ",
        "default; auto: 2 for 2 CPUs",
    );
    assert_setting(
        &run("prec1", &p, &[], file),
        "workers",
        "2",
        "file ferricorn.toml",
    );
    assert_setting(
        &run("prec1", &p, &[], file),
        "backlog",
        "64",
        "file ferricorn.toml",
    );
    let web = ("WEB_CONCURRENCY", "3");
    assert_setting(
        &run("prec2", &p, &[web], file),
        "workers",
        "3",
        "env WEB_CONCURRENCY",
    );
    let uv = ("UVICORN_WORKERS", "4");
    assert_setting(
        &run("prec3", &p, &[web, uv], file),
        "workers",
        "4",
        "env UVICORN_WORKERS",
    );
    let gw = ("GUNICORN_WORKERS", "5");
    assert_setting(
        &run("prec4", &p, &[web, uv, gw], file),
        "workers",
        "5",
        "env GUNICORN_WORKERS",
    );
    let ca = ("GUNICORN_CMD_ARGS", "-w 6");
    assert_setting(
        &run("prec5", &p, &[web, uv, gw, ca], file),
        "workers",
        "6",
        "env GUNICORN_CMD_ARGS",
    );
    let fw = ("FERRICORN_WORKERS", "7");
    let out = run("prec6", &p, &[web, uv, gw, ca, fw], file);
    assert_setting(&out, "workers", "7", "env FERRICORN_WORKERS");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("# warning: `workers` is set differently by WEB_CONCURRENCY=3, UVICORN_WORKERS=4, GUNICORN_WORKERS=5, GUNICORN_CMD_ARGS=6, FERRICORN_WORKERS=7; using env FERRICORN_WORKERS"), "{stdout}");
    let out = run("prec7", &["--print-config", "-w", "8"], &[web, fw], file);
    assert_setting(&out, "workers", "8", "cli");
    // -c names another file, which replaces ferricorn.toml.
    let dir = temp_dir("prec-c");
    std::fs::write(dir.join("ferricorn.toml"), "workers = 2").expect("write");
    std::fs::write(dir.join("other.toml"), "workers = 9").expect("write");
    let out = command(&dir)
        .args(["--print-config", "-c", "other.toml"])
        .output()
        .expect("run");
    assert_setting(&out, "workers", "9", "file other.toml");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn print_config_shows_capacity() {
    let out = run(
        "capacity",
        &[
            "--print-config",
            "-w",
            "3",
            "--threads",
            "4",
            "--worker-connections",
            "100",
        ],
        &[],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 workers x 100 worker_connections = 300 connections"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 workers x 4 threads = 12 blocking threads"),
        "{stdout}"
    );
    assert!(stdout.contains("# CPUs: "), "{stdout}");
}

#[test]
fn check_config_and_bad_values_exit_2_with_one_line() {
    let ok = run("check-ok", &["--check-config"], &[], Some("workers = 2"));
    assert_eq!(ok.status.code(), Some(0));
    // A running server asking before a USR2 upgrade: a shared memory layout
    // other than this binary's refuses the takeover.
    let other = run(
        "check-shm",
        &["--check-config"],
        &[("FERRICORN_UPGRADE_SHM_SIZE", "4096")],
        None,
    );
    assert_eq!(other.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("shared memory") && stderr.contains("4096"),
        "{stderr}"
    );
    type Case<'a> = (
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        (
            &["--workers", "many"],
            &[],
            None,
            "invalid value for `workers` (from cli): expected a whole number, found `many`",
        ),
        (
            &["-w", "-1"],
            &[],
            None,
            "invalid value for `workers` (from cli): expected a whole number (0 or more), found `-1`",
        ),
        (
            &[],
            &[("FERRICORN_WORKERS", "-1")],
            None,
            "invalid value for `workers` (from env FERRICORN_WORKERS): expected a whole number (0 or more), found `-1`",
        ),
        (
            &[],
            &[],
            Some("workers = -1"),
            "invalid value for `workers` (from file ferricorn.toml): expected a whole number (0 or more), found `-1`",
        ),
        (
            &[],
            &[("FERRICORN_WORKERZ", "3")],
            None,
            "env FERRICORN_WORKERZ: not a name ferricorn reads; did you mean `FERRICORN_WORKERS`?",
        ),
        (
            &["--channel-layer", "redis://127.0.0.1:0"],
            &[],
            None,
            "invalid value for `channel_layer` (from cli): `redis://127.0.0.1:0`: the port is not a number from 1 to 65535",
        ),
        (
            &[],
            &[("FERRICORN_CHANNEL_LAYER", "rediss://:secret@cache:6380")],
            None,
            "invalid value for `channel_layer` (from env FERRICORN_CHANNEL_LAYER): `rediss://:****@cache:6380`: TLS to Redis is not supported yet",
        ),
        (
            &["--channel-layer", "redis+unix://relative.sock"],
            &[],
            None,
            "a Unix socket needs an absolute path",
        ),
        (
            &["--workerz", "3"],
            &[],
            None,
            "unexpected argument '--workerz' found; did you mean `--workers`?",
        ),
        (
            &[],
            &[],
            Some("worker-connections = 10"),
            "unknown setting `worker-connections`; did you mean `worker_connections`?",
        ),
        (
            &["-b", "9000"],
            &[],
            None,
            "invalid value for `bind` (from cli): `9000` is a port without a host",
        ),
        (
            &[],
            &[("WEB_CONCURRENCY", "lots")],
            None,
            "invalid value for `workers` (from env WEB_CONCURRENCY)",
        ),
        (
            &[],
            &[],
            Some("wrokers = 2"),
            "file ferricorn.toml: unknown setting `wrokers`",
        ),
        (
            &[],
            &[],
            Some("workers = ["),
            "file ferricorn.toml: TOML parse error at line 1, column 12: invalid array",
        ),
        (
            &["-b", "localhost:notaport"],
            &[],
            None,
            "invalid value for `bind` (from cli)",
        ),
        (
            &["--log-level", "loud"],
            &[],
            None,
            "invalid value for `log_level` (from cli): `loud` is not one of",
        ),
        (
            &["--graceful-timeout=-1"],
            &[],
            None,
            "invalid value for `graceful_timeout` (from cli): -1 is not a number of seconds",
        ),
        (
            &["--timeout", "0.5"],
            &[],
            None,
            "invalid value for `timeout` (from cli): 0.5 s is under 2 s",
        ),
        (
            &["-c", "missing.toml"],
            &[],
            None,
            "config file missing.toml: no such file",
        ),
        (
            &[],
            &[("GUNICORN_CMD_ARGS", "--certfile cert.pem")],
            None,
            "invalid value for `certfile` (from env GUNICORN_CMD_ARGS): `cert.pem`: cannot be read: No such file",
        ),
        (
            &["--no-such-flag"],
            &[],
            None,
            "unexpected argument '--no-such-flag'",
        ),
    ];
    for (args, env, file, message) in cases {
        for check in [true, false] {
            let mut all: Vec<&str> = args.to_vec();
            if check {
                all.push("--check-config");
            }
            let out = run("bad", &all, env, *file);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
            assert!(stderr.contains(message), "{args:?} {env:?}: {stderr}");
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "not one line: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn env_settings_reach_the_running_server() {
    let server = Server::start_with(&[], &[("WEB_CONCURRENCY", "2"), ("FERRICORN_THREADS", "3")]);
    assert_eq!(server.workers().len(), 2);
    server.wait_log("starting with 2 workers", std::time::Duration::from_secs(1));
    server.wait_log("3 blocking threads each", std::time::Duration::from_secs(1));
}

#[test]
fn help_groups_the_options_and_ends_with_signals_exit_codes_and_names() {
    let out = run("help", &["--help"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    let mut at = 0;
    for heading in [
        "Server socket:",
        "Workers:",
        "Timeouts:",
        "Process management:",
        "Logging:",
        "Proxies:",
        "Request limits:",
        "WebSocket:",
        "Channel layer:",
        "Health and metrics:",
        "Settings:",
        "Signals (to the supervisor):",
        "Exit codes: 0 clean stop",
        "Other servers' environment names read: PORT, UVICORN_HOST",
    ] {
        let found = help[at..]
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading:?} after byte {at} in:\n{help}"));
        at += found + heading.len();
    }
    assert!(help.contains("fd://N"), "{help}");
    assert!(help.contains("--host <HOST>") && help.contains("--port <PORT>"));
    assert!(
        help.contains(r#"[default: %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"]"#),
        "{help}"
    );
}

/// The `ENV NAME=VALUE` lines of `docker/Dockerfile`'s runtime stage.
fn image_env() -> Vec<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker/Dockerfile");
    let text = std::fs::read_to_string(file).expect("docker/Dockerfile");
    let runtime = text.rsplit("\nFROM ").next().expect("a runtime stage");
    runtime
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_docker_images_environment_honours_port_and_uvicorn_port() {
    let image = image_env();
    assert!(!image.is_empty(), "the Dockerfile sets no ENV");
    let bind = |extra: &[(&str, &str)], args: &[&str]| {
        let mut env: Vec<(&str, &str)> = image
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        let mut all = vec!["--print-config"];
        all.extend_from_slice(args);
        line(&run("image-env", &all, &env, None), "bind")
    };
    assert!(bind(&[], &[]).starts_with(r#"bind = ["0.0.0.0:8000"]"#));
    assert!(bind(&[("PORT", "9000")], &[]).starts_with(r#"bind = ["0.0.0.0:9000"]"#));
    assert!(bind(&[("UVICORN_PORT", "9001")], &[]).starts_with(r#"bind = ["0.0.0.0:9001"]"#));
    assert!(
        bind(&[("PORT", "9000")], &["--port", "9002"]).starts_with(r#"bind = ["0.0.0.0:9002"]"#)
    );
    assert!(
        bind(&[("PORT", "9000"), ("GUNICORN_CMD_ARGS", "-b :9003")], &[])
            .starts_with(r#"bind = [":9003"]"#)
    );
    assert!(
        bind(&[("PORT", "9000")], &["-b", "127.0.0.1:9004"])
            .starts_with(r#"bind = ["127.0.0.1:9004"]"#)
    );
}

/// One bad value for one setting through one layer.
struct Bad {
    /// How the value is given: `file`, `env NAME` or `cli`.
    layer: String,
    /// The setting.
    key: &'static str,
    /// The value's bytes (for the file, the whole line).
    value: Vec<u8>,
    /// Whether it must be refused; otherwise a value of this shape may be
    /// valid for this setting (a long text), and may be taken.
    refuse: bool,
}

/// Bad values for `s`: of the wrong type, out of range, empty, huge, not
/// UTF-8; through the file, every environment name, and the command line.
fn bad_values(s: &'static ferricorn_config::Setting) -> Vec<Bad> {
    use ferricorn_config::options::Tag;
    let number = matches!(s.kind, Tag::Int | Tag::Secs);
    let huge_digits = "9".repeat(100_000);
    let huge_text = "a".repeat(100_000);
    // (value, refused everywhere, refused in the file as a TOML string)
    let mut values: Vec<(Vec<u8>, bool)> = vec![
        (b"\xff\xfe".to_vec(), true),
        (
            huge_text.clone().into_bytes(),
            number || s.kind == Tag::Flag,
        ),
    ];
    if number {
        values.extend([
            (b"many".to_vec(), true),
            (b"-1".to_vec(), true),
            (b"99999999999999999999999".to_vec(), true),
            (huge_digits.clone().into_bytes(), true),
        ]);
    }
    if s.kind == Tag::Flag {
        values.push((b"maybe".to_vec(), true));
    }
    let mut cases = Vec::new();
    for (value, refuse) in &values {
        let mut envs: Vec<String> = vec![s.env_name()];
        envs.extend(s.env.iter().map(|n| (*n).to_owned()));
        for name in envs {
            cases.push(Bad {
                layer: format!("env {name}"),
                key: s.key,
                value: value.clone(),
                refuse: *refuse,
            });
        }
        let mut line = format!("{} = \"", s.key).into_bytes();
        line.extend(value);
        line.extend(b"\"\n");
        cases.push(Bad {
            layer: "file".into(),
            key: s.key,
            value: line,
            // A number or a flag as a TOML string is of the wrong type.
            refuse: *refuse || number || s.kind == Tag::Flag,
        });
        cases.push(Bad {
            layer: "cli".into(),
            key: s.key,
            value: value.clone(),
            refuse: *refuse,
        });
    }
    // The wrong TOML type for every setting: a table.
    cases.push(Bad {
        layer: "file".into(),
        key: s.key,
        value: format!("{} = {{ a = 1 }}\n", s.key).into_bytes(),
        refuse: true,
    });
    // Empty: refused on the command line and in the file where a number or
    // a flag is wanted; an empty environment variable counts as unset.
    for layer in ["cli", "file"] {
        cases.push(Bad {
            layer: layer.into(),
            key: s.key,
            value: if layer == "file" {
                format!("{} = \"\"\n", s.key).into_bytes()
            } else {
                Vec::new()
            },
            refuse: number || s.kind == Tag::Flag,
        });
    }
    if number {
        cases.push(Bad {
            layer: "file".into(),
            key: s.key,
            value: format!("{} = -1\n", s.key).into_bytes(),
            refuse: true,
        });
    }
    cases
}

/// Runs `--check-config` with `bad`; the exit code and stderr.
fn check_bad(
    dir: &std::path::Path,
    s: &ferricorn_config::Setting,
    bad: &Bad,
) -> (Option<i32>, String) {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let mut cmd = command(dir);
    cmd.arg("--check-config");
    let file = dir.join("ferricorn.toml");
    let _ = std::fs::remove_file(&file);
    match bad.layer.as_str() {
        "file" => std::fs::write(&file, &bad.value).expect("write the file"),
        "cli" => {
            let mut arg = OsString::from(format!("{}=", s.flag()));
            arg.push(OsString::from_vec(bad.value.clone()));
            cmd.arg(arg);
        }
        env => {
            let name = env.trim_start_matches("env ");
            cmd.env(name, OsString::from_vec(bad.value.clone()));
        }
    }
    let out = cmd.output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_setting_refuses_bad_values_in_every_layer_with_one_line() {
    let settings = ferricorn_config::SETTINGS;
    let failures = std::sync::Mutex::new(Vec::new());
    let runs = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for part in 0..3 {
            let (failures, runs) = (&failures, &runs);
            scope.spawn(move || {
                let dir = temp_dir(&format!("bad-values-{part}"));
                for s in settings.iter().skip(part).step_by(3) {
                    for bad in bad_values(s) {
                        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (code, stderr) = check_bad(&dir, s, &bad);
                        let what = format!(
                            "`{}` through {} ({} bytes: {:?})",
                            bad.key,
                            bad.layer,
                            bad.value.len(),
                            String::from_utf8_lossy(&bad.value[..bad.value.len().min(24)])
                        );
                        let layer_named = match bad.layer.as_str() {
                            "file" => stderr.contains("file ferricorn.toml"),
                            "cli" => stderr.contains("(from cli)") || stderr.contains(&s.flag()),
                            env => stderr.contains(env),
                        };
                        let problem = if stderr.contains("panicked") {
                            Some("a panic")
                        } else if code == Some(0) && bad.refuse {
                            Some("taken")
                        } else if code != Some(0) && code != Some(2) {
                            Some("an exit code other than 0 and 2")
                        } else if code == Some(2) && stderr.trim_end().lines().count() != 1 {
                            Some("not one line")
                        } else if code == Some(2) && stderr.len() > 400 {
                            Some("a line over 400 bytes")
                        } else if code == Some(2)
                            && !(stderr.contains(&format!("`{}`", s.key))
                                || stderr.contains(&s.flag()))
                        {
                            Some("no setting named")
                        } else if code == Some(2) && !layer_named {
                            Some("no layer named")
                        } else {
                            None
                        };
                        if let Some(problem) = problem {
                            failures
                                .lock()
                                .expect("lock")
                                .push(format!("{what}: {problem} (exit {code:?}): {stderr}"));
                        }
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    let runs = runs.into_inner();
    assert!(runs > settings.len() * 10, "{runs} runs");
    assert!(
        failures.is_empty(),
        "{} of {runs}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
