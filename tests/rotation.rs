//! End-to-end test of the rotation study on stories260K (from the offline mirror).

mod common;

#[test]
fn rotations_reduce_layer_quantization_error_on_stories260k() {
    let Some((dir, data)) = common::with_stories260k("rotation") else {
        return;
    };
    let out = common::run_config(
        dir.path(),
        &data,
        "rotation",
        "kind = \"rotation\"\nrotations = [\"none\", \"hadamard\"]\nweights = [\"w8\", \"w4\"]\nactivation_bits = [16, 4]\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 48\n",
    );
    let text = std::fs::read_to_string(out.join("tables/rotation_summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let get = |scheme: &str, weights: &str, bits: &str, what: &str| -> f64 {
        let r = rows
            .iter()
            .find(|r| {
                r[col("scheme")] == scheme
                    && r[col("weights")] == weights
                    && r[col("activation_bits")] == bits
            })
            .unwrap_or_else(|| panic!("no row {scheme} {weights} {bits}"));
        r[col(what)].parse().unwrap()
    };
    assert_eq!(rows.len(), 2 * 2 * 2);
    // All 36 linear layers are measured (widths 64 and 172 both have Hadamard matrices).
    assert_eq!(get("hadamard", "w4", "16", "layers"), 36.0);
    // More bits, less error; W8A16 is close to lossless.
    assert!(
        get("none", "w8", "16", "mean_sqnr_db") > get("none", "w4", "16", "mean_sqnr_db") + 15.0
    );
    assert!(get("none", "w8", "16", "mean_sqnr_db") > 35.0);
    // The Hadamard rotation lifts the worst layer at W8A4, where activation outliers dominate.
    assert!(
        get("hadamard", "w8", "4", "worst_sqnr_db") > get("none", "w8", "4", "worst_sqnr_db") + 2.0
    );
    assert!(get("hadamard", "w4", "16", "mean_sqnr_db") > get("none", "w4", "16", "mean_sqnr_db"));
}
