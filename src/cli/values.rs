//! Value parsers for numeric flags: NaN, infinities and out-of-range numbers are usage errors
//! (exit 2) naming the flag, instead of values that poison a solve or a replay.

/// A finite float (`--prefetch-margin`).
pub fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s} is not a finite number"))
    }
}

/// A finite float greater than 0 (`--time-limit`, `--half-life`).
pub fn positive(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be greater than 0"))
    }
}

/// A finite float of at least 0 (`--beta`, objective weights).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = finite(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be 0 or more"))
    }
}

/// A finite float in (0, 1] (`model init --scale`).
pub fn unit_fraction(s: &str) -> Result<f64, String> {
    let v = positive(s)?;
    if v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be at most 1"))
    }
}

/// A whole number of at least 1 (`--tokens`, `--seq-len`, `--first-sequences`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    let v: usize = s
        .parse()
        .map_err(|e| format!("{s:?} is not a whole number: {e}"))?;
    if v >= 1 {
        Ok(v)
    } else {
        Err("must be at least 1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_nan_infinities_and_out_of_range() {
        for s in ["NaN", "nan", "inf", "-inf", "x"] {
            assert!(finite(s).is_err(), "{s}");
        }
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert_eq!(positive("2.5"), Ok(2.5));
        assert!(non_negative("-0.1").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(unit_fraction("0").is_err());
        assert!(unit_fraction("1.5").is_err());
        assert_eq!(unit_fraction("1"), Ok(1.0));
        assert!(at_least_one("0").is_err());
        assert_eq!(at_least_one("3"), Ok(3));
    }
}
