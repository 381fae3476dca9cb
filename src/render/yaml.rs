//! Kubernetes objects to YAML text. Objects are built as serde data and converted to
//! `serde_json::Value` first, whose maps are sorted: the output has the same key order as
//! kubeadm's (Go marshals structs to JSON, then sigs.k8s.io/yaml sorts the keys), and every
//! string is quoted by serde-saphyr where a YAML 1.1 reader would misread it (`"true"`,
//! `"0"`, `"*,bootstrapsigner"`), which hand-written templates get wrong.

use serde::Serialize;
use serde_json::Value;

/// One YAML document (no leading `---`), ending with a newline.
pub fn to_yaml<T: Serialize + ?Sized>(value: &T) -> Result<String, super::RenderError> {
    let value =
        serde_json::to_value(value).map_err(|e| super::RenderError::Serialize(e.to_string()))?;
    let mut opts = serde_saphyr::SerializerOptions::default();
    // Never fold long single-line strings (long flags stay on one line, like kubeadm's
    // output); multi-line strings still become `|` literal blocks.
    opts.folded_wrap_chars = usize::MAX / 2;
    let mut out = serde_saphyr::to_string_with_options(&value, opts)
        .map_err(|e| super::RenderError::Serialize(e.to_string()))?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Several documents joined the way kubectl reads them: each preceded by `---`.
pub fn to_yaml_stream(docs: &[Value]) -> Result<String, super::RenderError> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&to_yaml(d)?);
    }
    Ok(out)
}

/// YAML readers give integers back as floats when parsed into `serde_json::Value`
/// (`maxPods: 50` becomes `50.0`); written back they would read as floats, which Go
/// rejects for integer fields. Turns every integral float back into an integer.
pub fn normalize_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && !n.is_i64()
                && !n.is_u64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Value::Object(map) => map.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

/// Deep-merges `over` onto `base`: maps merge key by key, anything else in `over` replaces
/// the value in `base`. Used to lay a user's KubeletConfiguration/KubeProxyConfiguration over
/// kubeadm's defaults, so fields the user sets win and the rest keep kubeadm's values.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_keys_compact_lists_and_safe_quoting() {
        let v = json!({
            "spec": {"containers": [{"name": "a", "command": ["x", "--controllers=*,bootstrapsigner"]}]},
            "kind": "Pod",
            "data": {"flag": "true", "num": "0", "yes": "yes", "multi": "a\nb\n"},
            "apiVersion": "v1",
        });
        let y = to_yaml(&v).unwrap();
        assert!(y.starts_with("apiVersion: v1\n"), "{y}");
        assert!(y.contains("  containers:\n  - command:\n"), "{y}");
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back, v, "{y}");
    }

    #[test]
    fn long_strings_stay_on_one_line() {
        let long = format!("--x={}", "a,".repeat(100));
        let y = to_yaml(&json!({ "c": [long.clone()] })).unwrap();
        assert_eq!(y.lines().count(), 2, "{y}");
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back["c"][0], long);
    }

    #[test]
    fn merge_and_numbers() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        let mut over: Value = serde_saphyr::from_str("a:\n  c: 3\nd: [5, 6]\ne: 7\n").unwrap();
        normalize_numbers(&mut over);
        merge(&mut base, &over);
        assert_eq!(base, json!({"a": {"b": 1, "c": 3}, "d": [5, 6], "e": 7}));
        assert!(to_yaml(&base).unwrap().contains("e: 7\n"));
    }
}
