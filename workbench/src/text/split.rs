//! [`split_text`]: the deterministic train/validation split.

/// Splits `text` into (train, valid) by contiguous blocks: validation is the last
/// `valid_fraction` of the text's bytes, with the cut moved forward to the next
/// line boundary, so that validation starts at the beginning of a line and train
/// ends with its newline.
///
/// The nominal cut is byte `floor((1 - valid_fraction) * len)`. If the byte
/// before it is a newline (or it is 0 or `len`) the text is cut there; otherwise
/// just after the next `\n`, or at the end (empty validation) if there is none.
/// The two slices always concatenate to `text`.
///
/// # Panics
/// If `valid_fraction` is not within `[0, 1]`.
pub fn split_text(text: &str, valid_fraction: f64) -> (&str, &str) {
    assert!(
        (0.0..=1.0).contains(&valid_fraction),
        "valid_fraction must be within [0, 1], got {valid_fraction}"
    );
    let bytes = text.as_bytes();
    let len = bytes.len();
    let nominal = (((1.0 - valid_fraction) * len as f64).floor() as usize).min(len);
    let cut = if nominal == 0 || nominal == len || bytes[nominal - 1] == b'\n' {
        nominal
    } else {
        bytes[nominal..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(len, |i| nominal + i + 1)
    };
    // `cut` is 0, `len` or just after an ASCII newline: always a char boundary.
    text.split_at(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_next_line_start() {
        let text = "aaaa\nbbbb\ncccc\ndddd\n";
        // 20 bytes; 25% → nominal cut at byte 15, just after a newline.
        assert_eq!(split_text(text, 0.25), ("aaaa\nbbbb\ncccc\n", "dddd\n"));
        // 30% → nominal 14 (inside "cccc\n"): moved to 15.
        assert_eq!(split_text(text, 0.3), ("aaaa\nbbbb\ncccc\n", "dddd\n"));
        assert_eq!(split_text(text, 0.0), (text, ""));
        assert_eq!(split_text(text, 1.0), ("", text));
        assert_eq!(split_text("no newline here", 0.5), ("no newline here", ""));
        assert_eq!(split_text("", 0.5), ("", ""));
        // Multi-byte characters around the cut stay whole.
        assert_eq!(split_text("ééé\nééé", 0.9), ("ééé\n", "ééé"));
    }

    #[test]
    #[should_panic(expected = "valid_fraction")]
    fn rejects_fractions_outside_the_unit_interval() {
        split_text("abc", 1.5);
    }
}
