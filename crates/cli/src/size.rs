//! Memory sizes as users write them: 64M, 1G, 512K, 1048576.

/// A size that doesn't parse (each holds the text as given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size '{0}': use a number with an optional K, M or G suffix, like 64M or 1G")]
    Invalid(String),
    #[error("size '{0}' is too large")]
    TooLarge(String),
}

/// Parses a size with an optional K, M, G or T suffix (powers of 1024;
/// "KB", "KiB" and lower case accepted).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, suffix) = lower.split_at(digits_end);
    let invalid = || SizeError::Invalid(text.to_string());
    if number.is_empty() {
        return Err(invalid());
    }
    let shift = match suffix.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(invalid()),
    };
    let value: u64 = number.parse().map_err(|_| invalid())?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

/// Formats a byte count the way users write it: 64M, 3.5G.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift {
            return if bytes.is_multiple_of(1 << shift) {
                format!("{}{unit}", bytes >> shift)
            } else {
                format!("{:.1}{unit}", bytes as f64 / (1u64 << shift) as f64)
            };
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_suffixes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512KB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn bad_sizes_say_how_to_write_one() {
        for bad in ["", "M", "abc", "12X", "-5M", "1.5G"] {
            let error = parse_size(bad).unwrap_err();
            assert_eq!(error, SizeError::Invalid(bad.into()));
            assert!(error.to_string().contains("like 64M"), "{bad}: {error}");
        }
        let error = parse_size("99999999999T").unwrap_err();
        assert_eq!(error.to_string(), "size '99999999999T' is too large");
    }

    #[test]
    fn sizes_format_back() {
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(3 << 30), "3G");
        assert_eq!(format_size((3 << 30) + (1 << 29)), "3.5G");
    }
}
