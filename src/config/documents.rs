//! Multi-document YAML files: split them the way kubectl's YAMLReader does (on `---`
//! lines), remember where each document starts so errors can name real line numbers, and
//! find the line of a field for errors found after parsing.

use std::path::{Path, PathBuf};

/// One YAML document of a file, with the line (1-based) its text starts on.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    pub first_line: usize,
    pub text: String,
}

/// `apiVersion` and `kind`, read before the typed parse to choose the type.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
}

/// Splits `text` into documents, dropping ones that hold only comments or blanks.
pub fn split(file: &Path, text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let mut flush = |current: &mut String, start: usize| {
        let has_content = current
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if has_content {
            docs.push(Document {
                file: file.to_path_buf(),
                first_line: start,
                text: std::mem::take(current),
            });
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let is_marker = line.starts_with("---")
            && line[3..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || c == '#');
        if is_marker || line == "..." {
            flush(&mut current, start);
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut current, start);
    docs
}

impl Document {
    /// `FILE:LINE: a.b` for the field at `path` (`FILE: a.b` when it is not written in
    /// this document), for errors found after parsing.
    pub fn origin_of(&self, path: &[&str]) -> String {
        let file = self.file.display();
        match self.line_of(path) {
            Some(line) => format!("{file}:{line}: {}", path.join(".")),
            None => format!("{file}: {}", path.join(".")),
        }
    }

    /// Line in the file of the key at `path` (e.g. `["networking", "podSubnet"]`), for
    /// block-style YAML. `None` when the field is not written in this document.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let mut depth = 0;
        let mut indent_of_parent: isize = -1;
        let mut child_indent: Option<isize> = None;
        for (i, raw) in self.text.lines().enumerate() {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = (raw.len() - trimmed.len()) as isize;
            let key_part = trimmed.trim_start_matches("- ");
            let indent = indent + (trimmed.len() - key_part.len()) as isize;
            if depth > 0 && indent <= indent_of_parent {
                // Left the block we were descending into: the path is not here.
                return None;
            }
            let expected = if depth == 0 {
                0
            } else {
                *child_indent.get_or_insert(indent)
            };
            if indent != expected {
                continue;
            }
            if let Some((key, _)) = key_part.split_once(':') {
                let key = key.trim().trim_matches('"').trim_matches('\'');
                if key == path[depth] {
                    if depth + 1 == path.len() {
                        return Some(self.first_line + i);
                    }
                    depth += 1;
                    indent_of_parent = indent;
                    child_indent = None;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_counts_lines() {
        let text =
            "# leading comment\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc:\n  d: 3\n...\n";
        let docs = split(Path::new("f.yaml"), text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].first_line, 3);
        assert_eq!(docs[0].text, "a: 1\n");
        assert_eq!(docs[1].first_line, 7);
        assert_eq!(docs[1].line_of(&["c", "d"]), Some(9));
        assert_eq!(docs[1].line_of(&["b"]), Some(7));
        assert_eq!(docs[1].line_of(&["d"]), None);
    }
}
