//! Checked readings of the numbers and lists the tool's words carry (flags, grid lines): each
//! error names the word and what is accepted.

/// Parse a positive integer in `lo..=hi`, naming the flag and the accepted range on failure.
pub fn parse_in_range(s: &str, what: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let t = s.trim();
    match t.parse::<i128>() {
        Ok(v) if v >= lo as i128 && v <= hi as i128 => Ok(v as usize),
        Ok(v) => Err(format!("{what} {v} is out of range: accepted {lo}..={hi}")),
        Err(_) => Err(format!(
            "{what} '{t}' is not an integer: accepted {lo}..={hi}"
        )),
    }
}

/// Parse a comma-separated list of positive integers (e.g. `1,2,3,5,8`).
pub fn parse_usize_list(s: &str, what: &str) -> Result<Vec<usize>, String> {
    if s.trim().is_empty() {
        return Err(format!(
            "{what} list is empty: give comma-separated positive integers, e.g. 1,2,3,5,8"
        ));
    }
    s.split(',')
        .map(|p| {
            let p = p.trim();
            p.parse::<usize>().map_err(|_| {
                format!("{what} '{p}' is not a non-negative integer: give comma-separated positive integers, e.g. 1,2,3,5,8")
            })
        })
        .collect()
}

/// Parse an inclusive range `A..B`, `A..=B`, `A-B` or a single `A`.
pub fn parse_range(s: &str, what: &str) -> Result<(usize, usize), String> {
    let t = s.trim();
    let (a, b) = if let Some((a, b)) = t.split_once("..=") {
        (a, b)
    } else if let Some((a, b)) = t.split_once("..") {
        (a, b)
    } else if let Some((a, b)) = t.split_once('-') {
        (a, b)
    } else {
        (t, t)
    };
    let err = || format!("{what} '{t}' is not a range: write A..B (inclusive), e.g. 2..16");
    let a: usize = a.trim().parse().map_err(|_| err())?;
    let b: usize = b.trim().parse().map_err(|_| err())?;
    if a > b {
        return Err(format!(
            "{what} '{t}' is empty: the start must not exceed the end"
        ));
    }
    Ok((a, b))
}
