//! Brace expansion of shard lists, as webdataset does it (through the `braceexpand`
//! package): `shards/{00000..00099}.tar`, `{a,b}` lists, several groups, nesting.

use crate::JobError;

/// The most names one pattern may expand to.
pub const MAX_EXPANSIONS: usize = 1_000_000;

/// Expands the brace groups of `pattern`, left group outermost.
///
/// - `{lo..hi}` and `{lo..hi..step}`: a numeric range (either direction, bounds included);
///   when a bound has a leading zero, every number is zero-padded to the wider bound's
///   width, as `braceexpand` does (`{00000..00099}` → `00000` … `00099`);
/// - `{a,b,c}`: a list; items may themselves hold groups, and may be empty;
/// - a pattern without braces expands to itself.
///
/// # Errors
/// [`JobError::BracePattern`] naming the pattern for an unmatched `{` or `}`, a group with
/// neither `..` nor `,`, a bad range (a step of 0, a bound that is not a number or has more
/// than 18 digits), or more than [`MAX_EXPANSIONS`] names.
///
/// ```
/// use clip_vision_job::webdataset::expand_braces;
/// let names = expand_braces("shards/{00000..00099}.tar")?;
/// assert_eq!((names.len(), names[0].as_str(), names[99].as_str()),
///            (100, "shards/00000.tar", "shards/00099.tar"));
/// assert_eq!(expand_braces("{a,b}-{1..2}")?, ["a-1", "a-2", "b-1", "b-2"]);
/// # Ok::<(), clip_vision_job::JobError>(())
/// ```
pub fn expand_braces(pattern: &str) -> Result<Vec<String>, JobError> {
    expand(pattern).map_err(|problem| JobError::BracePattern {
        pattern: pattern.to_owned(),
        problem,
    })
}

fn expand(s: &str) -> Result<Vec<String>, String> {
    let Some(open) = s.find('{') else {
        if let Some(at) = s.find('}') {
            return Err(format!("unmatched `}}` at byte {at}"));
        }
        return Ok(vec![s.to_owned()]);
    };
    let prefix = &s[..open];
    if let Some(at) = prefix.find('}') {
        return Err(format!("unmatched `}}` at byte {at}"));
    }
    let close = matching_close(s, open)?;
    let body = &s[open + 1..close];
    let suffixes = expand(&s[close + 1..])?;
    let items = if let Some(range) = range_of(body)? {
        range
    } else {
        let parts = split_top_level(body);
        if parts.len() < 2 {
            return Err(format!(
                "group {{{body}}} at byte {open} has neither `..` nor `,`"
            ));
        }
        let mut items = Vec::new();
        for part in parts {
            items.extend(expand(part)?);
            check_count(items.len())?;
        }
        items
    };
    check_count(items.len().saturating_mul(suffixes.len()))?;
    let mut out = Vec::with_capacity(items.len() * suffixes.len());
    for item in &items {
        for suffix in &suffixes {
            out.push(format!("{prefix}{item}{suffix}"));
        }
    }
    Ok(out)
}

fn check_count(n: usize) -> Result<(), String> {
    if n > MAX_EXPANSIONS {
        return Err(format!(
            "expands to more than {MAX_EXPANSIONS} names ({n} or more)"
        ));
    }
    Ok(())
}

/// Byte offset of the `}` closing the `{` at `open`.
fn matching_close(s: &str, open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().skip_while(|&(i, _)| i < open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(format!("unmatched `{{` at byte {open}"))
}

/// `body` cut at the commas outside nested groups.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

/// The numbers of a `lo..hi[..step]` group, or `None` when `body` is not a range.
fn range_of(body: &str) -> Result<Option<Vec<String>>, String> {
    if !body.contains("..") || body.contains(['{', ',']) {
        return Ok(None);
    }
    let fields: Vec<&str> = body.split("..").collect();
    let (lo, hi, step) = match fields[..] {
        [lo, hi] => (lo, hi, "1"),
        [lo, hi, step] => (lo, hi, step),
        _ => return Err(format!("range {{{body}}} has more than three fields")),
    };
    let number = |s: &str| -> Result<u64, String> {
        if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "range {{{body}}}: {s:?} is not a non-negative integer of at most 18 digits"
            ));
        }
        s.parse::<u64>()
            .map_err(|e| format!("range {{{body}}}: {s:?}: {e}"))
    };
    let (a, b, step_n) = (number(lo)?, number(hi)?, number(step)?);
    if step_n == 0 {
        return Err(format!("range {{{body}}} has a step of 0"));
    }
    let count = a.abs_diff(b) / step_n + 1;
    check_count(usize::try_from(count).unwrap_or(usize::MAX))?;
    let padded = [lo, hi].iter().any(|s| s.len() > 1 && s.starts_with('0'));
    let width = if padded { lo.len().max(hi.len()) } else { 0 };
    let numbers = (0..count).map(|i| {
        let n = if a <= b {
            a + i * step_n
        } else {
            a - i * step_n
        };
        format!("{n:0width$}")
    });
    Ok(Some(numbers.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_padded_range_keeps_its_width() {
        let names = expand_braces("shards/{00000..00099}.tar").unwrap();
        assert_eq!(names.len(), 100);
        assert_eq!(names[0], "shards/00000.tar");
        assert_eq!(names[42], "shards/00042.tar");
        assert_eq!(names[99], "shards/00099.tar");
        // braceexpand pads to the wider bound when either has a leading zero.
        assert_eq!(expand_braces("{08..10}").unwrap(), ["08", "09", "10"]);
        assert_eq!(expand_braces("{8..10}").unwrap(), ["8", "9", "10"]);
        assert_eq!(expand_braces("{0..2}").unwrap(), ["0", "1", "2"]);
    }

    #[test]
    fn steps_descending_ranges_lists_and_nesting() {
        assert_eq!(expand_braces("{0..10..5}").unwrap(), ["0", "5", "10"]);
        assert_eq!(expand_braces("{3..1}").unwrap(), ["3", "2", "1"]);
        assert_eq!(
            expand_braces("s3/{train,val}/{0..1}.tar").unwrap(),
            [
                "s3/train/0.tar",
                "s3/train/1.tar",
                "s3/val/0.tar",
                "s3/val/1.tar"
            ]
        );
        assert_eq!(
            expand_braces("{a,b{1..2},}x").unwrap(),
            ["ax", "b1x", "b2x", "x"]
        );
        assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
    }

    #[test]
    fn malformed_and_absurd_patterns_are_errors_naming_them() {
        for (pattern, problem) in [
            ("shards/{0..9.tar", "unmatched `{`"),
            ("shards/0..9}.tar", "unmatched `}`"),
            ("{a}", "neither"),
            ("{}", "neither"),
            ("{0..x}", "not a non-negative integer"),
            ("{-1..3}", "not a non-negative integer"),
            ("{0..9..0}", "step of 0"),
            ("{0..1..2..3}", "more than three fields"),
            ("{0..1000000}", "more than 1000000"),
            ("{0..999}{0..999}{0..9}", "more than 1000000"),
            ("{0..9999999999999999999}", "at most 18 digits"),
        ] {
            let err = expand_braces(pattern).unwrap_err().to_string();
            assert!(err.contains(&format!("{pattern:?}")), "{err}");
            assert!(err.contains(problem), "{pattern}: {err}");
        }
        // The largest allowed expansion is fine.
        assert_eq!(expand_braces("{1..1000000}").unwrap().len(), MAX_EXPANSIONS);
    }
}
