//! Raw values as TOML writes them: `--print-config`'s lines, and the values
//! quoted in messages.

use figment::value::Value;

/// Renders a value as TOML would write it.
pub(crate) fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => toml_string(s),
        Value::Char(_, c) => toml_string(&c.to_string()),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match (n.to_u128(), n.to_i128(), n.to_f64()) {
            (Some(u), ..) => u.to_string(),
            (_, Some(i), _) => i.to_string(),
            (.., Some(f)) if f.is_nan() => "nan".to_owned(),
            (.., Some(f)) => f.to_string(),
            _ => format!("{n:?}"),
        },
        Value::Array(_, items) => {
            let items: Vec<_> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Dict(..) | Value::Empty(..) => String::new(),
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_render_as_toml() {
        assert_eq!(toml_string("a\"b\\c\u{1b}"), "\"a\\\"b\\\\c\\u001B\"");
    }
}
