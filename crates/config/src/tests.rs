//! Layering under `figment::Jail`: each test gets its own working directory
//! and environment.

#![allow(
    clippy::result_large_err,
    reason = "figment::Jail closures return figment's own, large, error type"
)]
use std::path::Path;

use figment::Jail;

use super::*;
use crate::values::{CertReqs, HttpVersion, ProxyProtocol};

fn source_of<'a>(loaded: &'a Loaded, key: &str) -> &'a str {
    loaded.source(key).expect("key")
}

fn load(cli: &Options, file: Option<&Path>) -> Result<Loaded> {
    super::load(&Options::default(), cli, file)
}

/// The options a command line of `args` sets.
fn parse_cli(args: &[&str]) -> Options {
    use clap::{Args, Command, FromArgMatches};
    let cmd = Options::augment_args(Command::new("t").no_binary_name(true));
    let m = cmd.try_get_matches_from(args).expect("flags parse");
    Options::from_arg_matches(&m).expect("options")
}

fn cli(workers: Option<u64>) -> Options {
    Options {
        workers,
        ..Default::default()
    }
}

#[test]
fn defaults_when_nothing_is_set() {
    Jail::expect_with(|_| {
        let loaded = load(&Options::default(), None).expect("load");
        assert!(loaded.file.is_none());
        assert!(loaded.values.iter().all(|s| s.source == "default"));
        assert_eq!(loaded.config.worker_connections, 1000);
        Ok(())
    });
}

#[test]
fn file_then_env_then_cli() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "ferricorn.toml",
            "workers = 3\nbacklog = 100\nkeep_alive = 2\nbind = \"127.0.0.1:9001\"",
        )?;
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 3);
        assert_eq!(source_of(&loaded, "workers"), "file ferricorn.toml");
        assert_eq!(
            loaded.config.keep_alive,
            Some(std::time::Duration::from_secs(2))
        );

        jail.set_env("FERRICORN_WORKERS", "4");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 4);
        assert_eq!(source_of(&loaded, "workers"), "env FERRICORN_WORKERS");
        assert_eq!(loaded.config.backlog, 100);

        let loaded = load(&cli(Some(5)), None).expect("load");
        assert_eq!(loaded.config.workers, 5);
        assert_eq!(source_of(&loaded, "workers"), "cli");
        Ok(())
    });
}

#[test]
fn named_file_wins_over_the_default_file() {
    Jail::expect_with(|jail| {
        jail.create_file("ferricorn.toml", "workers = 3")?;
        jail.create_file("other.toml", "workers = 6")?;
        let loaded = load(&Options::default(), Some(Path::new("other.toml"))).expect("load");
        assert_eq!(loaded.config.workers, 6);
        jail.set_env("FERRICORN_CONFIG", "ferricorn.toml");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 3);
        let err = load(&Options::default(), Some(Path::new("missing.toml"))).expect_err("missing");
        assert_eq!(err.to_string(), "config file missing.toml: no such file");
        Ok(())
    });
}

#[test]
fn other_servers_names_rank_below_ferricorns() {
    Jail::expect_with(|jail| {
        jail.set_env("WEB_CONCURRENCY", "2");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(
            (loaded.config.workers, source_of(&loaded, "workers")),
            (2, "env WEB_CONCURRENCY")
        );

        jail.set_env("UVICORN_WORKERS", "3");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 3);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("WEB_CONCURRENCY=2, UVICORN_WORKERS=3"),
            "{:?}",
            loaded.warnings
        );

        jail.set_env("GUNICORN_WORKERS", "4");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 4);

        jail.set_env("GUNICORN_CMD_ARGS", "--workers 5 --log-level=warning");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(
            (loaded.config.workers, source_of(&loaded, "workers")),
            (5, "env GUNICORN_CMD_ARGS")
        );
        assert_eq!(loaded.config.log_level, LogLevel::Warning);

        jail.set_env("FERRICORN_WORKERS", "6");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.workers, 6);
        assert!(loaded.warnings[0].ends_with("using env FERRICORN_WORKERS"));

        let loaded = load(&cli(Some(7)), None).expect("load");
        assert_eq!(loaded.config.workers, 7);
        assert!(loaded.warnings[0].ends_with("using cli"));
        Ok(())
    });
}

#[test]
fn log_level_names() {
    Jail::expect_with(|jail| {
        jail.set_env("UVICORN_LOG_LEVEL", "debug");
        jail.set_env("GUNICORN_LOG_LEVEL", "ERROR");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.log_level, LogLevel::Error);
        assert_eq!(source_of(&loaded, "log_level"), "env GUNICORN_LOG_LEVEL");
        Ok(())
    });
}

#[test]
fn port_and_uvicorn_host_port_bind() {
    Jail::expect_with(|jail| {
        let tcp = |s: &str| Bind::Tcp(s.parse().expect("addr"));
        jail.set_env("PORT", "8080");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:8080")]);
        assert_eq!(source_of(&loaded, "bind"), "env PORT");

        jail.set_env("UVICORN_PORT", "9090");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("127.0.0.1:9090")]);

        jail.set_env("UVICORN_HOST", "::1");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("[::1]:9090")]);
        assert_eq!(
            source_of(&loaded, "bind"),
            "env UVICORN_HOST + env UVICORN_PORT"
        );

        jail.set_env("FERRICORN_BIND", "127.0.0.1:1,unix:/tmp/x.sock");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(
            loaded.config.bind,
            [tcp("127.0.0.1:1"), Bind::Unix("/tmp/x.sock".into())]
        );
        Ok(())
    });
}

#[test]
fn errors_name_the_setting_and_the_layer() {
    Jail::expect_with(|jail| {
        jail.set_env("WEB_CONCURRENCY", "many");
        let err = load(&Options::default(), None)
            .expect_err("bad")
            .to_string();
        assert!(
            err.starts_with("invalid value for `workers` (from env WEB_CONCURRENCY)"),
            "{err}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("ferricorn.toml", "wrokers = 2")?;
        let err = load(&Options::default(), None)
            .expect_err("bad")
            .to_string();
        assert_eq!(
            err,
            "file ferricorn.toml: unknown setting `wrokers`; did you mean `workers`?"
        );
        assert_eq!(err.lines().count(), 1);
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("FERRICORN_GRACEFUL_TIMEOUT", "-3");
        let err = load(&Options::default(), None)
            .expect_err("bad")
            .to_string();
        assert!(
            err.starts_with(
                "invalid value for `graceful_timeout` (from env FERRICORN_GRACEFUL_TIMEOUT)"
            ),
            "{err}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("GUNICORN_CMD_ARGS", "--workerz 3");
        let err = load(&Options::default(), None)
            .expect_err("bad")
            .to_string();
        assert_eq!(
            err,
            "env GUNICORN_CMD_ARGS: unexpected argument '--workerz' found; did you mean `--workers`?"
        );
        Ok(())
    });
}

#[test]
fn report_lists_every_setting_and_capacity() {
    Jail::expect_with(|jail| {
        jail.set_env("FERRICORN_THREADS", "3");
        let loaded = load(&cli(Some(2)), None).expect("load");
        let report = loaded.report();
        assert!(report.contains("workers = 2 "));
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("threads = 3") && l.ends_with("# env FERRICORN_THREADS"))
        );
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("workers = 2") && l.ends_with("# cli"))
        );
        assert!(report.contains("2 workers x 1000 worker_connections = 2000 connections"));
        assert!(report.contains("2 workers x 3 threads = 6 blocking threads"));
        for s in SETTINGS {
            assert!(
                report
                    .lines()
                    .any(|l| l.starts_with(&format!("{} = ", s.key))),
                "{}",
                s.key
            );
        }
        Ok(())
    });
}

#[test]
fn gunicorns_own_flags_are_set_aside_with_a_warning_each() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "GUNICORN_CMD_ARGS",
            "-k uvicorn.workers.UvicornWorker --preload --worker-tmp-dir=/dev/shm --statsd-host localhost:8125 \
             --log-file /tmp/err.log -w 3 --preload --proxy-protocol --keep-alive 7",
        );
        let loaded = load(&Options::default(), None).expect("a copied Gunicorn line starts");
        assert_eq!(loaded.config.workers, 3);
        assert_eq!(
            loaded.config.keep_alive,
            Some(std::time::Duration::from_secs(7))
        );
        assert_eq!(
            loaded.config.error_logfile.as_deref(),
            Some(Path::new("/tmp/err.log"))
        );
        assert_eq!(loaded.config.proxy_protocol, ProxyProtocol::Auto);
        let w = &loaded.warnings;
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(
            w[0].contains("`-k uvicorn.workers.UvicornWorker` has no effect"),
            "{w:?}"
        );
        assert!(w[1].contains("`--preload` has no effect"), "{w:?}");
        assert!(
            w[2].contains("`--worker-tmp-dir /dev/shm` has no effect"),
            "{w:?}"
        );
        assert!(
            w[3].contains("`--statsd-host localhost:8125` has no effect"),
            "{w:?}"
        );
        assert!(
            w[4].contains("`--log-file /tmp/err.log` is read as `--error-logfile`"),
            "{w:?}"
        );

        // Gunicorn's TLS flags are ferricorn's; its OpenSSL knobs are set aside.
        jail.set_env(
            "GUNICORN_CMD_ARGS",
            "--certfile /c.pem --keyfile=/k.pem --ca-certs /ca.pem --cert-reqs 2 \
             --ssl-version 2 --ciphers TLSv1 --do-handshake-on-connect",
        );
        let loaded = load(&Options::default(), None).expect("TLS flags");
        let c = &loaded.config;
        assert_eq!(c.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(c.keyfile.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(c.ca_certs.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(c.cert_reqs, CertReqs::Required);
        let w = &loaded.warnings;
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("`--ssl-version 2` has no effect"), "{w:?}");
        assert!(w[1].contains("`--ciphers TLSv1` has no effect"), "{w:?}");
        Ok(())
    });
}

#[test]
fn tls_takes_uvicorns_names_and_its_settings_need_a_certificate() {
    Jail::expect_with(|jail| {
        jail.set_env("UVICORN_SSL_CERTFILE", "/c.pem");
        jail.set_env("UVICORN_SSL_KEYFILE", "/k.pem");
        let cli = parse_cli(&["--ssl-ca-certs", "/ca.pem", "--ssl-cert-reqs", "optional"]);
        let c = load(&cli, None).expect("uvicorn's names").config;
        assert_eq!(c.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(c.keyfile.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(c.cert_reqs, CertReqs::Optional);
        assert_eq!(c.http, HttpVersion::Auto);

        jail.clear_env();
        let err = |args: &[&str]| {
            load(&parse_cli(args), None)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            err(&["--keyfile", "/k.pem"]),
            "invalid value for `keyfile` (from cli): needs `certfile` (TLS is off without it)"
        );
        assert!(
            err(&["--certfile", "/c", "--cert-reqs", "required"])
                .starts_with("invalid value for `cert_reqs` (from cli): needs `ca_certs`"),
        );
        assert!(err(&["--cert-reqs", "sometimes"]).contains("is not none, optional or required"));
        assert!(
            err(&[
                "--certfile",
                "/c",
                "-b",
                "127.0.0.1:8443",
                "--insecure-bind",
                "127.0.0.1:8443"
            ])
            .contains("an address is TLS or plain, not both")
        );
        assert!(err(&["--http", "3"]).contains("`3` is not auto, 1 or 2"));
        let c = load(
            &parse_cli(&[
                "--certfile",
                "/c",
                "--insecure-bind",
                "127.0.0.1:8080",
                "--http",
                "2",
            ]),
            None,
        )
        .expect("plain beside TLS")
        .config;
        assert_eq!(c.insecure_bind.len(), 1);
        assert_eq!(c.http, HttpVersion::Two);
        Ok(())
    });
}

#[test]
fn a_kebab_case_key_and_a_broken_file_are_explained() {
    Jail::expect_with(|jail| {
        jail.create_file("ferricorn.toml", "worker-connections = 10")?;
        let err = load(&Options::default(), None).expect_err("kebab case");
        assert_eq!(
            err.to_string(),
            "file ferricorn.toml: unknown setting `worker-connections`; did you mean `worker_connections`?"
        );
        jail.create_file("ferricorn.toml", "workers = \"3")?;
        let err = load(&Options::default(), None).expect_err("broken");
        let err = err.to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("line 1") && err.contains("string"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_types_are_worded_the_same_in_every_layer() {
    let message = |err: Error| match err {
        Error::Invalid { message, .. } => message,
        other => panic!("{other:?}"),
    };
    Jail::expect_with(|jail| {
        jail.create_file("ferricorn.toml", "workers = -1")?;
        let file = message(load(&Options::default(), None).expect_err("file"));
        std::fs::remove_file("ferricorn.toml").ok();
        jail.set_env("FERRICORN_WORKERS", "-1");
        let env = message(load(&Options::default(), None).expect_err("env"));
        assert_eq!(file, "expected a whole number (0 or more), found `-1`");
        assert_eq!(file, env);
        Ok(())
    });
}

#[test]
fn host_and_port_names_make_one_address() {
    Jail::expect_with(|jail| {
        let tcp = |s: &str| Bind::Tcp(s.parse().expect("addr"));
        let with = |host: Option<&str>, port: Option<&str>| Options {
            host: host.map(str::to_owned),
            port: port.map(str::to_owned),
            ..Default::default()
        };
        // The Docker image's host, under every port name.
        jail.set_env("UVICORN_HOST", "0.0.0.0");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:8000")]);
        jail.set_env("PORT", "9000");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:9000")]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        jail.set_env("UVICORN_PORT", "9001");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:9001")]);
        let loaded = load(&with(None, Some("9002")), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:9002")]);
        assert_eq!(source_of(&loaded, "bind"), "cli");
        jail.set_env("GUNICORN_CMD_ARGS", "-b :9003");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:9003")]);
        jail.set_env("FERRICORN_PORT", "9004");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("0.0.0.0:9004")]);
        jail.set_env("FERRICORN_BIND", "127.0.0.1:9005");
        let loaded = load(&Options::default(), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("127.0.0.1:9005")]);
        let loaded = load(&with(Some("::1"), None), None).expect("load");
        assert_eq!(loaded.config.bind, [tcp("[::1]:9004")]);
        let err = load(&with(None, Some("http")), None).expect_err("a port that is no number");
        assert!(
            err.to_string()
                .starts_with("invalid value for `bind` (from"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn the_report_is_toml_that_reads_back_to_the_same_settings() {
    Jail::expect_with(|jail| {
        jail.set_env("FERRICORN_THREADS", "3");
        jail.set_env("UVICORN_HOST", "0.0.0.0");
        jail.set_env(
            "FERRICORN_ACCESS_LOGFORMAT",
            r#"%(h)s "%(r)s" \ %({x-id}i)s"#,
        );
        jail.set_env("GUNICORN_CMD_ARGS", "--preload --keep-alive 2.5");
        let given = load(&cli(Some(0)), None).expect("load");
        let report = given.report();
        jail.clear_env();
        jail.create_file("printed.toml", &report)?;
        let read = load(&Options::default(), Some(Path::new("printed.toml"))).expect("reads back");
        assert_eq!(read.config, given.config, "{report}");
        assert!(read.values.iter().all(|s| s.source == "file printed.toml"));
        assert!(report.contains("# cli; auto: "), "{report}");
        assert!(
            report.contains("# warning: env GUNICORN_CMD_ARGS: `--preload`"),
            "{report}"
        );
        Ok(())
    });
}

#[test]
fn a_misspelt_ferricorn_variable_is_refused_with_the_name_meant() {
    Jail::expect_with(|jail| {
        jail.set_env("FERRICORN_WORKERZ", "3");
        let err = load(&Options::default(), None).expect_err("misspelt");
        assert_eq!(
            err.to_string(),
            "env FERRICORN_WORKERZ: not a name ferricorn reads; did you mean `FERRICORN_WORKERS`?"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        // A program's own names, far from any of ferricorn's, are its own.
        jail.set_env("FERRICORN_DEMO_STARTUP_DELAY_MS", "5");
        jail.set_env("FERRICORN_PORT", "9000");
        load(&Options::default(), None).expect("left alone");
        Ok(())
    });
}
