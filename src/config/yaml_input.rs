//! YAML text to typed values, with errors in the user's words: the field path as the
//! user wrote it (`localAPIEndpoint.bindPort`, `spec.hosts[1].ssh.port`) and what is
//! expected there in plain language (`a whole number`, `a list`, `true or false`), never
//! the Rust type behind it. Every YAML file kubeboot reads (kubeadm configs, the cluster
//! inventory, kubeconfigs) goes through [`from_str`], so a new field gets good errors for
//! free.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a YAML text does not fit the type it is read into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlProblem {
    /// 1-based line and column within the text, when the parser knows them.
    pub location: Option<(usize, usize)>,
    /// The field path as written (`networking.podSubnet`, `bootstrapTokens[0].ttl`);
    /// empty for problems of the whole document (malformed YAML).
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for YamlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Parses one YAML document into `T`, tracking the path of the value being read so an
/// error can name it.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlProblem> {
    let mut track = serde_path_to_error::Track::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    });
    result.map_err(|err| {
        let path = track.path().to_string();
        problem(text, &path, &err)
    })
}

/// Turns a serde-saphyr error found at `path` into a [`YamlProblem`].
fn problem(text: &str, path: &str, err: &serde_saphyr::Error) -> YamlProblem {
    use serde_saphyr::Error as E;
    let location = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line() as usize, l.column() as usize));
    // serde_path_to_error writes `.` for the document root and `?` for a segment it
    // could not see (a key it was reading when the mapping failed): leave both out.
    let mut path = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect::<Vec<_>>()
        .join(".");
    let join = |parent: &str, field: &str| {
        if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        }
    };
    let found = || location.and_then(|(l, c)| scalar_at(text, l, c));
    let message = match err.without_snippet() {
        E::InvalidScalar { ty, .. } => expected_found(&plain(ty), found()),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!(
            "expected {}, found {}",
            plain(expected),
            plain_found(unexpected)
        ),
        E::SerdeInvalidLength { len, expected, .. } => {
            format!("expected {}, found {len} items", plain(expected))
        }
        E::Unexpected { expected, .. } => expected_found(&plain_event(expected), found()),
        E::NullIntoString { .. } => "expected a string, found nothing (null)".to_string(),
        E::InvalidBooleanStrict { .. } => expected_found("true or false", found()),
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            // The path stops at the mapping that holds the unknown key.
            if !path.ends_with(field.as_str()) {
                path = join(&path, field);
            }
            let known = if expected.is_empty() {
                "this mapping takes no fields".to_string()
            } else {
                format!("the fields here are {}", expected.join(", "))
            };
            format!("unknown field `{field}` (a typo?); {known}")
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown value `{variant}`; expected one of {}",
            expected.join(", ")
        ),
        E::SerdeMissingField { field, .. } => {
            path = join(&path, field);
            "required field is missing".to_string()
        }
        E::DuplicateMappingKey { key, .. } => match key {
            Some(k) => {
                path = join(&path, k);
                "given twice; give each field once".to_string()
            }
            None => "a key is given twice; give each field once".to_string(),
        },
        E::Message { msg, .. } => msg.clone(),
        other => {
            // Malformed YAML and the rest: the crate's first line, without its location
            // prefix (the caller adds file:line:column). It is about the text, not a field.
            path.clear();
            let full = other.to_string();
            let first = full.lines().next().unwrap_or("invalid YAML").to_string();
            let stripped = first
                .strip_prefix("error: ")
                .and_then(|rest| rest.strip_prefix("line "))
                .and_then(|rest| rest.split_once(": ").map(|(_, m)| m.to_string()))
                .unwrap_or(first);
            // The parser repeats the position at the end; the caller already gives it.
            let stripped = match stripped.rfind(" at line ") {
                Some(i) if stripped[i..].contains(", column ") => stripped[..i].to_string(),
                _ => stripped,
            };
            format!("invalid YAML: {stripped}")
        }
    };
    YamlProblem {
        location,
        path,
        message,
    }
}

fn expected_found(expected: &str, found: Option<String>) -> String {
    match found {
        Some(f) => format!("expected {expected}, found {f}"),
        None => format!("expected {expected}"),
    }
}

/// The plain scalar text at `line`:`column` (block style), quoted for the message.
fn scalar_at(text: &str, line: usize, column: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let rest: String = l.chars().skip(column.saturating_sub(1)).collect();
    let value = rest.split(" #").next().unwrap_or("").trim();
    let value = value.trim_end_matches([',', '}', ']']).trim();
    let dash_item = value == "-" || value.starts_with("- ");
    if value.is_empty() || dash_item || value.starts_with(['{', '[', '|', '>', '&', '*', '!']) {
        return None;
    }
    Some(format!("`{value}`"))
}

/// serde's and serde-saphyr's words for a type, in the user's.
pub fn plain(expected: &str) -> String {
    let e = expected.trim();
    let word = match e {
        "u8" => "a whole number 0-255",
        "u16" => "a whole number 0-65535",
        "u32" => "a whole number 0-4294967295",
        "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" | "integer" => {
            "a whole number"
        }
        "f32" | "f64" | "a float" | "float" => "a number",
        "bool" | "a boolean" | "boolean" => "true or false",
        "char" | "a character" => "a single character",
        "string" | "a string" | "str" | "a borrowed string" | "string scalar" => "a string",
        "a map" | "map" | "a mapping" => "a mapping (key: value lines)",
        "a sequence" | "sequence" | "a list" => "a list",
        "unit" | "null" => "nothing (null)",
        "option" | "an option" => "a value",
        _ => "",
    };
    if !word.is_empty() {
        return word.to_string();
    }
    if let Some(rest) = e.strip_prefix("struct ") {
        let _ = rest;
        return "a mapping (key: value lines)".to_string();
    }
    if e.starts_with("enum ") || e.starts_with("variant identifier") {
        return "one of the allowed values".to_string();
    }
    if e.starts_with("tuple") || e.starts_with("a tuple") {
        return "a list".to_string();
    }
    if e.starts_with("field identifier") {
        return "a known field name".to_string();
    }
    e.to_string()
}

/// serde-saphyr's event words (`sequence start`, `string scalar`) in the user's.
fn plain_event(expected: &str) -> String {
    match expected {
        "sequence start" => "a list".to_string(),
        "mapping start" | "empty mapping start" => "a mapping (key: value lines)".to_string(),
        "string scalar" | "str expected" | "missing string" | "scalar" => {
            "a single value (a string)".to_string()
        }
        "bool expected" | "missing bool" => "true or false".to_string(),
        other => plain(other),
    }
}

/// serde's description of what was found (`string "x"`, `map`, `sequence`).
fn plain_found(unexpected: &str) -> String {
    match unexpected {
        "map" => "a mapping".to_string(),
        "sequence" => "a list".to_string(),
        "unit value" | "unit" | "Option value" => "nothing (null)".to_string(),
        u => {
            for (prefix, word) in [
                ("string ", "the string "),
                ("integer ", "the number "),
                ("floating point ", "the number "),
                ("boolean ", ""),
                ("character ", "the character "),
            ] {
                if let Some(v) = u.strip_prefix(prefix) {
                    return format!("{word}{v}");
                }
            }
            u.to_string()
        }
    }
}

/// A serde message as `serde_json` words it (`invalid type: sequence, expected struct
/// RawFile`, `missing field `path``), in the user's words.
pub fn plain_serde_message(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!("expected {}, found {}", plain(expected), plain_found(found));
        }
    }
    if let Some((len, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let items = if len == "1" { "item" } else { "items" };
        return format!(
            "expected {}, found a list of {len} {items}",
            plain(expected)
        );
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("required field {rest} is missing");
    }
    if let Some((field, known)) = message
        .strip_prefix("unknown field ")
        .and_then(|rest| rest.split_once(", expected one of "))
    {
        return format!("unknown field {field} (a typo?); the fields here are {known}");
    }
    message.to_string()
}

/// A port number 1-65535, for `#[serde(deserialize_with)]` on `Option<u16>` port fields:
/// the error says a port is expected, not a 16-bit integer.
pub fn port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct PortVisitor;
    const EXPECTED: &str = "a port number 1-65535";
    impl serde::de::Visitor<'_> for PortVisitor {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(EXPECTED)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            match u16::try_from(v) {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(E::invalid_value(
                    serde::de::Unexpected::Unsigned(v),
                    &EXPECTED,
                )),
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            match u64::try_from(v) {
                Ok(u) => self.visit_u64(u),
                Err(_) => Err(E::invalid_value(
                    serde::de::Unexpected::Signed(v),
                    &EXPECTED,
                )),
            }
        }
    }
    d.deserialize_any(PortVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default, rename = "localAPIEndpoint")]
        local_api_endpoint: Inner,
        #[serde(default)]
        items: Vec<Item>,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default, deserialize_with = "port")]
        bind_port: Option<u16>,
        #[serde(default)]
        count: Option<u32>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        #[serde(default)]
        on: bool,
    }

    fn err(text: &str) -> YamlProblem {
        from_str::<Outer>(text).unwrap_err()
    }

    #[test]
    fn wrong_types_name_the_full_path_and_a_plain_expectation() {
        let e = err("localAPIEndpoint:\n  bindPort: sixty\n");
        assert_eq!(e.path, "localAPIEndpoint.bindPort", "{e:?}");
        assert!(e.message.contains("a port number 1-65535"), "{e:?}");
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e:?}");
        let e = err("localAPIEndpoint:\n  count: -1\n");
        assert_eq!(e.path, "localAPIEndpoint.count", "{e:?}");
        assert!(e.message.contains("a whole number"), "{e:?}");
        assert!(!e.message.contains("u32"), "{e:?}");
        let e = err("items:\n  - name: a\n  - name: b\n    on: maybe\n");
        assert_eq!(e.path, "items[1].on", "{e:?}");
        assert!(e.message.contains("true or false"), "{e:?}");
        let e = err("items:\n  - name: a\n    nmae: b\n");
        assert_eq!(e.path, "items[0].nmae", "{e:?}");
        let e = err("items:\n  - on: true\n");
        assert_eq!(e.path, "items[0].name", "{e:?}");
        assert!(e.message.contains("missing"), "{e:?}");
        let e = err("items: {name: a}\n");
        assert_eq!(e.path, "items", "{e:?}");
        assert!(e.message.contains("a list"), "{e:?}");
    }

    #[test]
    fn ports_outside_the_range_are_refused() {
        for bad in ["0", "70000", "-1", "\"6443\""] {
            let e = err(&format!("localAPIEndpoint:\n  bindPort: {bad}\n"));
            assert!(e.message.contains("a port number 1-65535"), "{bad}: {e:?}");
        }
        let ok: Outer = from_str("localAPIEndpoint: {bindPort: 6443}\n").unwrap();
        assert_eq!(ok.local_api_endpoint.bind_port, Some(6443));
    }
}
