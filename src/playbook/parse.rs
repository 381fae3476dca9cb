//! Playbook YAML to [`Playbook`]. Errors name the file (and line), the step and the
//! field, so a typo in a 40-step playbook is found at once.

use super::*;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// A playbook that cannot be read: where, which step, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlaybookError {
    /// `FILE` or `FILE:LINE`.
    pub origin: String,
    pub step: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(s) = &self.step {
            write!(f, "step {s:?}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

const KINDS: &[&str] = &[
    "file",
    "line",
    "package",
    "service",
    "sysctl",
    "module",
    "command",
    "artifact",
    "image_archives",
];
const STEP_FIELDS: &[&str] = &["name", "when", "notify"];

/// Where things are in the text (block-style YAML), for line numbers in errors.
struct Lines<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Lines<'_> {
    /// Line (1-based) of the `index`-th item of the top-level sequence `section`.
    fn item(&self, section: &str, index: usize) -> Option<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.starts_with(&format!("{section}:")))?;
        let mut indent = None;
        let mut seen = 0;
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let ind = l.len() - t.len();
            if ind == 0 && !t.starts_with('-') {
                return None; // next top-level key
            }
            if t.starts_with("- ") || t == "-" {
                let want = *indent.get_or_insert(ind);
                if ind == want {
                    if seen == index {
                        return Some(i + 1);
                    }
                    seen += 1;
                }
            }
        }
        None
    }

    /// Line of `key:` within the item starting at `from` (up to the next item).
    fn key_in_item(&self, from: usize, key: &str) -> Option<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let first = lines.get(from - 1)?;
        let item_indent = first.len() - first.trim_start().len();
        for (i, l) in lines.iter().enumerate().skip(from - 1) {
            let t = l.trim_start();
            let ind = l.len() - t.len();
            if i + 1 > from
                && (t.starts_with("- ") && ind <= item_indent || ind < item_indent && !t.is_empty())
            {
                return None;
            }
            let t = t.trim_start_matches("- ");
            if t.starts_with(&format!("{key}:")) {
                return Some(i + 1);
            }
        }
        None
    }

    fn at(&self, line: Option<usize>) -> String {
        match line {
            Some(l) => format!("{}:{l}", self.origin),
            None => self.origin.to_string(),
        }
    }
}

fn yaml_error(origin: &str, e: serde_saphyr::Error) -> PlaybookError {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("invalid YAML");
    let message = first
        .strip_prefix("error: ")
        .and_then(|rest| rest.strip_prefix("line "))
        .and_then(|rest| rest.split_once(": ").map(|(_, m)| m))
        .unwrap_or(first)
        .to_string();
    let origin = match e.location() {
        Some(l) => format!("{origin}:{}:{}", l.line(), l.column()),
        None => origin.to_string(),
    };
    PlaybookError {
        origin,
        step: None,
        field: None,
        message: format!("invalid YAML: {message}"),
    }
}

/// The field a serde message is about (`unknown field `mdoe``, `missing field `path``).
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// Reads file modes written as `"0644"`, `0644` (YAML 1.2 reads it as decimal 644, so
/// the digits are taken as octal either way) or `"644"`.
fn mode_of(v: &Value) -> Result<u32, String> {
    let digits = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= 0.0 => format!("{}", f as u64),
            _ => return Err(format!("{n} is not a file mode")),
        },
        other => {
            return Err(format!(
                "{other} is not a file mode; write it like \"0644\""
            ));
        }
    };
    let d = digits.trim_start_matches("0o");
    u32::from_str_radix(d, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{digits:?} is not an octal file mode like \"0644\""))
}

fn string_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{other} is not a string")),
            })
            .collect(),
        other => Err(format!("{other} is not a string or a list of strings")),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: String,
    content: Option<String>,
    template: Option<String>,
    #[serde(default)]
    mode: Option<Value>,
    owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    path: String,
    regexp: String,
    action: String,
    line: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    #[serde(default)]
    apt: Option<Value>,
    #[serde(default)]
    dnf: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    enabled: Option<bool>,
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSysctl {
    file: String,
    values: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    name: String,
    #[serde(default)]
    builtin_if: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    check: String,
    apply: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImageArchives {
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    name: String,
    path: String,
    #[serde(default)]
    mode: Option<Value>,
}

pub(super) fn parse(origin: &str, text: &str) -> Result<Playbook, PlaybookError> {
    let lines = Lines { origin, text };
    let root: Value = serde_saphyr::from_str(text).map_err(|e| yaml_error(origin, e))?;
    let top_err = |field: &str, message: String| PlaybookError {
        origin: origin.to_string(),
        step: None,
        field: Some(field.to_string()),
        message,
    };
    let Value::Object(map) = root else {
        return Err(PlaybookError {
            origin: origin.to_string(),
            step: None,
            field: None,
            message: "a playbook is a mapping with name, description, steps and handlers".into(),
        });
    };
    for k in map.keys() {
        if !["name", "description", "steps", "handlers"].contains(&k.as_str()) {
            return Err(top_err(
                k,
                "unknown field; expected one of name, description, steps, handlers".into(),
            ));
        }
    }
    let name = match map.get("name") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(top_err("name", "missing or not a string".into())),
    };
    let description = match map.get("description") {
        Some(Value::String(s)) => s.clone(),
        None => String::new(),
        Some(_) => return Err(top_err("description", "not a string".into())),
    };
    let steps = match map.get("steps") {
        Some(Value::Array(a)) => parse_steps(&lines, "steps", a)?,
        _ => return Err(top_err("steps", "missing or not a list of steps".into())),
    };
    let handlers = match map.get("handlers") {
        Some(Value::Array(a)) => parse_steps(&lines, "handlers", a)?,
        None => Vec::new(),
        Some(_) => return Err(top_err("handlers", "not a list of steps".into())),
    };
    for s in &steps {
        for n in &s.notify {
            if !handlers.iter().any(|h| &h.name == n) {
                let idx = steps.iter().position(|x| x.name == s.name).unwrap_or(0);
                let at = lines.item("steps", idx);
                return Err(PlaybookError {
                    origin: lines.at(at.and_then(|l| lines.key_in_item(l, "notify")).or(at)),
                    step: Some(s.name.clone()),
                    field: Some("notify".into()),
                    message: if handlers.is_empty() {
                        format!("no handler named {n:?}; the playbook has no handlers")
                    } else {
                        format!(
                            "no handler named {n:?}; handlers: {}",
                            handlers
                                .iter()
                                .map(|h| h.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                });
            }
        }
    }
    Ok(Playbook {
        name,
        origin: origin.to_string(),
        description,
        steps,
        handlers,
    })
}

fn parse_steps(lines: &Lines, section: &str, items: &[Value]) -> Result<Vec<Step>, PlaybookError> {
    let mut out: Vec<Step> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = lines.item(section, i);
        let name = match item.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => format!("#{} of {section}", i + 1),
        };
        let err = |field: Option<&str>, message: String| PlaybookError {
            origin: lines.at(field
                .and_then(|f| at.and_then(|l| lines.key_in_item(l, f)))
                .or(at)),
            step: Some(name.clone()),
            field: field.map(str::to_string),
            message,
        };
        let Value::Object(map) = item else {
            return Err(err(
                None,
                "a step is a mapping with name and one kind".into(),
            ));
        };
        if !matches!(map.get("name"), Some(Value::String(_))) {
            return Err(err(Some("name"), "missing: every step needs a name".into()));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(err(Some("name"), "two steps have this name".into()));
        }
        let mut kind_keys = Vec::new();
        for k in map.keys() {
            if KINDS.contains(&k.as_str()) {
                kind_keys.push(k.as_str());
            } else if !STEP_FIELDS.contains(&k.as_str()) {
                return Err(err(
                    Some(k),
                    format!(
                        "unknown step kind or field; kinds: {}; step fields: {}",
                        KINDS.join(", "),
                        STEP_FIELDS.join(", ")
                    ),
                ));
            }
        }
        let kind_key = match kind_keys.as_slice() {
            [k] => *k,
            [] => {
                return Err(err(
                    None,
                    format!("no step kind; give exactly one of {}", KINDS.join(", ")),
                ));
            }
            more => {
                return Err(err(
                    Some(more[1]),
                    format!(
                        "more than one step kind ({}); give one per step",
                        more.join(", ")
                    ),
                ));
            }
        };
        let when = match map.get("when") {
            None => None,
            Some(v) => {
                Some(scalar_string(v).ok_or_else(|| err(Some("when"), "not a string".into()))?)
            }
        };
        let notify = match map.get("notify") {
            None => Vec::new(),
            Some(v) => string_list(v).map_err(|m| err(Some("notify"), m))?,
        };
        let mut body = map[kind_key].clone();
        // YAML 1.1 habits (`content: y`, `apply: true`) would be type errors in string
        // fields; take scalars as the text they were written as.
        if let Value::Object(b) = &mut body {
            for (k, v) in b.iter_mut() {
                if !matches!(k.as_str(), "enabled" | "mode" | "values")
                    && matches!(v, Value::Bool(_) | Value::Number(_))
                {
                    *v = Value::String(scalar_string(v).unwrap_or_default());
                }
            }
        }
        let body_map = body.as_object().cloned().unwrap_or_default();
        // Errors inside the kind's body: name the body field, located under the kind key.
        let body_err = |message: String| {
            // Type errors do not name the field: find the one holding that kind of value.
            let field = if message.starts_with("invalid type") {
                let kind = message.trim_start_matches("invalid type: ");
                body_map
                    .iter()
                    .find(|(_, v)| match v {
                        Value::Array(_) => kind.starts_with("sequence"),
                        Value::Object(_) => kind.starts_with("map"),
                        Value::String(_) => kind.starts_with("string"),
                        Value::Bool(_) => kind.starts_with("boolean"),
                        Value::Number(_) => kind.contains("integer") || kind.contains("floating"),
                        Value::Null => kind.starts_with("null"),
                    })
                    .map(|(k, _)| k.clone())
            } else {
                field_of(&message)
            };
            let line = at.and_then(|l| lines.key_in_item(l, kind_key)).map(|kl| {
                field
                    .as_deref()
                    .and_then(|f| lines.key_in_item(kl, f))
                    .unwrap_or(kl)
            });
            PlaybookError {
                origin: lines.at(line.or(at)),
                step: Some(name.clone()),
                field: Some(match &field {
                    Some(f) => format!("{kind_key}.{f}"),
                    None => kind_key.to_string(),
                }),
                message: crate::config::yaml_input::plain_serde_message(&message),
            }
        };
        let field_err = |field: &str, message: String| PlaybookError {
            origin: lines.at(at
                .and_then(|l| lines.key_in_item(l, kind_key))
                .map(|kl| lines.key_in_item(kl, field).unwrap_or(kl))
                .or(at)),
            step: Some(name.clone()),
            field: Some(format!("{kind_key}.{field}")),
            message,
        };
        fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| e.to_string())
        }
        let kind = match kind_key {
            "file" => {
                let r: RawFile = typed(body).map_err(body_err)?;
                if r.content.is_some() == r.template.is_some() {
                    return Err(field_err(
                        "content",
                        "give exactly one of content or template".into(),
                    ));
                }
                if let Some(t) = &r.template
                    && !files::exists(t)
                {
                    return Err(field_err(
                        "template",
                        format!(
                            "no template {t:?}; templates: {}",
                            files::names().join(", ")
                        ),
                    ));
                }
                StepKind::File(FileStep {
                    path: r.path,
                    content: r.content,
                    template: r.template,
                    mode: match &r.mode {
                        Some(m) => mode_of(m).map_err(|m| field_err("mode", m))?,
                        None => 0o644,
                    },
                    owner: r.owner.unwrap_or_else(|| "root:root".into()),
                })
            }
            "line" => {
                let r: RawLine = typed(body).map_err(body_err)?;
                let action = match (r.action.as_str(), r.line) {
                    ("comment", None) => LineAction::Comment,
                    ("remove", None) => LineAction::Remove,
                    ("present", Some(l)) => LineAction::Present(l),
                    ("present", None) => {
                        return Err(field_err(
                            "line",
                            "missing: action present needs the line".into(),
                        ));
                    }
                    ("comment" | "remove", Some(_)) => {
                        return Err(field_err("line", "only action present takes a line".into()));
                    }
                    (other, _) => {
                        return Err(field_err(
                            "action",
                            format!("{other:?} is not an action; use comment, remove or present"),
                        ));
                    }
                };
                StepKind::Line(LineStep {
                    path: r.path,
                    regexp: r.regexp,
                    action,
                })
            }
            "package" => {
                let r: RawPackage = typed(body).map_err(body_err)?;
                let apt = match &r.apt {
                    Some(v) => string_list(v).map_err(|m| field_err("apt", m))?,
                    None => Vec::new(),
                };
                let dnf = match &r.dnf {
                    Some(v) => string_list(v).map_err(|m| field_err("dnf", m))?,
                    None => Vec::new(),
                };
                if apt.is_empty() && dnf.is_empty() {
                    return Err(field_err(
                        "apt",
                        "missing: list packages under apt and/or dnf".into(),
                    ));
                }
                StepKind::Package(PackageStep { apt, dnf })
            }
            "service" => {
                let r: RawService = typed(body).map_err(body_err)?;
                let state = match r.state.as_deref() {
                    None => None,
                    Some("running" | "started") => Some(ServiceState::Running),
                    Some("stopped") => Some(ServiceState::Stopped),
                    Some("restarted") => Some(ServiceState::Restarted),
                    Some(o) => {
                        return Err(field_err(
                            "state",
                            format!("{o:?} is not a state; use running, stopped or restarted"),
                        ));
                    }
                };
                if r.enabled.is_none() && state.is_none() {
                    return Err(field_err(
                        "enabled",
                        "missing: give enabled and/or state".into(),
                    ));
                }
                StepKind::Service(ServiceStep {
                    name: r.name,
                    enabled: r.enabled,
                    state,
                })
            }
            "sysctl" => {
                let r: RawSysctl = typed(body).map_err(body_err)?;
                let mut values = BTreeMap::new();
                for (k, v) in r.values {
                    let s = scalar_string(&v)
                        .ok_or_else(|| field_err("values", format!("{k}: not a scalar value")))?;
                    values.insert(k, s);
                }
                if values.is_empty() {
                    return Err(field_err("values", "missing: no values".into()));
                }
                StepKind::Sysctl(SysctlStep {
                    file: r.file,
                    values,
                })
            }
            "module" => {
                let r: RawModule = typed(body).map_err(body_err)?;
                StepKind::Module(ModuleStep {
                    name: r.name,
                    builtin_if: r.builtin_if,
                })
            }
            "command" => {
                let r: RawCommand = typed(body).map_err(body_err)?;
                StepKind::Command(CommandStep {
                    check: r.check,
                    apply: r.apply,
                })
            }
            "artifact" => {
                let r: RawArtifact = typed(body).map_err(body_err)?;
                StepKind::Artifact(ArtifactStep {
                    name: r.name,
                    path: r.path,
                    mode: match &r.mode {
                        Some(m) => mode_of(m).map_err(|m| field_err("mode", m))?,
                        None => 0o755,
                    },
                })
            }
            "image_archives" => {
                let r: RawImageArchives = typed(body).map_err(body_err)?;
                StepKind::ImageArchives(ImageArchivesStep {
                    namespace: r.namespace.unwrap_or_else(|| "k8s.io".into()),
                })
            }
            _ => unreachable!("kind keys are from KINDS"),
        };
        out.push(Step {
            name,
            when,
            notify,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> PlaybookError {
        Playbook::parse("pb.yaml", text).unwrap_err()
    }

    #[test]
    fn embedded_playbooks_parse() {
        for (name, _) in EMBEDDED {
            let p = Playbook::load(name, None).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.steps.is_empty());
        }
    }

    #[test]
    fn bad_yaml_names_file_line_and_column() {
        let e = err("name: x\nsteps:\n  - name: a\n    file: {path: /x\n");
        assert!(e.origin.starts_with("pb.yaml:"), "{e}");
        assert!(e.to_string().contains("invalid YAML"), "{e}");
        let e = err("name: x\nsteps:\n  - name: a\n   bad: [\n");
        assert!(e.origin.starts_with("pb.yaml:"), "{e}");
    }

    #[test]
    fn unknown_kind_names_step_and_field() {
        let e = err(
            "name: x\nsteps:\n  - name: first\n    command: {check: 'true', apply: 'true'}\n  - name: second\n    servce:\n      name: containerd\n",
        );
        assert_eq!(e.origin, "pb.yaml:6", "{e}");
        assert_eq!(e.step.as_deref(), Some("second"));
        assert_eq!(e.field.as_deref(), Some("servce"));
        assert!(e.to_string().contains("unknown step kind"), "{e}");
    }

    #[test]
    fn missing_and_unknown_body_fields() {
        let e = err(
            "name: x\nsteps:\n  - name: cfg\n    file:\n      content: hi\n      mode: \"0644\"\n",
        );
        assert_eq!(e.step.as_deref(), Some("cfg"));
        assert_eq!(e.field.as_deref(), Some("file.path"), "{e}");
        assert!(
            e.message.contains("required field `path` is missing"),
            "{e}"
        );
        assert_eq!(e.origin, "pb.yaml:4", "{e}");

        let e = err(
            "name: x\nsteps:\n  - name: cfg\n    file:\n      path: /x\n      content: hi\n      mdoe: \"0644\"\n",
        );
        assert_eq!(e.field.as_deref(), Some("file.mdoe"), "{e}");
        assert_eq!(e.origin, "pb.yaml:7", "{e}");
        assert!(e.to_string().contains("step \"cfg\""), "{e}");

        let e = err("name: x\nsteps:\n  - name: m\n    file: {path: /x, content: yes, mode: rw}\n");
        assert_eq!(e.field.as_deref(), Some("file.mode"), "{e}");

        let e = err(
            "name: x\nsteps:\n  - name: t\n    command:\n      check: [a, b]\n      apply: x\n",
        );
        assert_eq!(e.field.as_deref(), Some("command.check"), "{e}");
        assert_eq!(e.origin, "pb.yaml:5", "{e}");

        let e = err("name: x\nsteps:\n  - file: {path: /x, content: y}\n");
        assert_eq!(e.field.as_deref(), Some("name"), "{e}");
        assert_eq!(e.step.as_deref(), Some("#1 of steps"), "{e}");

        let e = err("name: x\nsteps:\n  - name: s\n    service: {name: kubelet, state: up}\n");
        assert_eq!(e.field.as_deref(), Some("service.state"), "{e}");

        let e = err(
            "name: x\nsteps:\n  - name: s\n    command: {check: 'true', apply: 'true'}\n    notify: nobody\n",
        );
        assert_eq!(e.field.as_deref(), Some("notify"), "{e}");
        assert_eq!(e.origin, "pb.yaml:5", "{e}");

        let e = err(
            "name: x\nsteps:\n  - name: s\n    command: {check: 'true', apply: 'true'}\n    file: {path: /x, content: y}\n",
        );
        assert!(e.message.contains("more than one step kind"), "{e}");
    }

    #[test]
    fn modes_are_octal_however_written() {
        let p = Playbook::parse(
            "pb.yaml",
            "name: x\nsteps:\n  - name: a\n    file: {path: /a, content: x, mode: 0600}\n  - name: b\n    file: {path: /b, content: x, mode: \"0755\"}\n",
        )
        .unwrap();
        let modes: Vec<u32> = p
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::File(f) => f.mode,
                _ => 0,
            })
            .collect();
        assert_eq!(modes, vec![0o600, 0o755]);
    }
}
