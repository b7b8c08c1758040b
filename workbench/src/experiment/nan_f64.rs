//! Floats that may be NaN in a unit's saved output. JSON has no NaN: serde_json
//! writes NaN (and ±inf) as `null`, so a field that is "not applicable" (KL to
//! the start of a run trained from scratch) or a diverged loss must read `null`
//! back as NaN, or a finished sweep could not be tabulated or resumed.

use serde::{Deserialize, Deserializer};

/// Deserializes a number, or `null` as NaN. Use with
/// `#[serde(deserialize_with = "crate::experiment::nan_f64::de")]`.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Row {
        #[serde(deserialize_with = "super::de")]
        x: f64,
    }

    #[test]
    fn nan_survives_a_json_round_trip() {
        let text = serde_json::to_string(&Row { x: f64::NAN }).unwrap();
        assert_eq!(text, r#"{"x":null}"#);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.x.is_nan());
        let back: Row = serde_json::from_str(r#"{"x":1.5}"#).unwrap();
        assert_eq!(back.x, 1.5);
    }
}
