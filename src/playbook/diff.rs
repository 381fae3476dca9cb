//! A small unified-style line diff for `--plan` (files are config-sized: an LCS table is
//! fine, and a size cap keeps it so).

/// Lines of `old` and `new` as `-`/`+`/` ` rows with up to `context` unchanged lines
/// around each change; `None` when equal.
pub fn unified(path: &str, old: &str, new: &str, context: usize) -> Option<String> {
    if old == new {
        return None;
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return Some(format!(
            "--- {path}\n+++ {path} (wanted)\n(too large to diff: {} -> {} lines)\n",
            a.len(),
            b.len()
        ));
    }
    // lcs[i][j] = length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut rows: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            rows.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            rows.push(('-', a[i]));
            i += 1;
        } else {
            rows.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.0 != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut out = format!("--- {path}\n+++ {path} (wanted)\n");
    let mut last_printed: Option<usize> = None;
    for (k, (c, line)) in rows.iter().enumerate() {
        let near = changed.iter().any(|&x| x.abs_diff(k) <= context);
        if !near {
            continue;
        }
        if let Some(l) = last_printed
            && k > l + 1
        {
            out.push_str("@@ ... @@\n");
        }
        out.push(*c);
        out.push_str(line);
        out.push('\n');
        last_printed = Some(k);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn shows_changes_with_context() {
        let d = super::unified(
            "/etc/fstab",
            "a\nb\nc\nd\ne\nf\ng\n",
            "a\nb\nc\n# d\ne\nf\ng\n",
            1,
        )
        .unwrap();
        assert_eq!(
            d,
            "--- /etc/fstab\n+++ /etc/fstab (wanted)\n c\n-d\n+# d\n e\n"
        );
        assert!(super::unified("x", "same\n", "same\n", 3).is_none());
        let d = super::unified("n", "", "x = 1\n", 3).unwrap();
        assert!(d.ends_with("+x = 1\n"), "{d}");
    }
}
