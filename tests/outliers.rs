//! End-to-end test of the outlier study on stories260K (from the offline mirror).

mod common;

#[test]
fn rotations_flatten_stories260k_outliers() {
    let Some((dir, data)) = common::with_stories260k("outliers") else {
        return;
    };
    let out = common::run_config(
        dir.path(),
        &data,
        "outliers",
        "kind = \"outliers\"\nrotations = [\"none\", \"hadamard\", \"random_orthogonal\"]\n[model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 48\n",
    );
    let text = std::fs::read_to_string(out.join("tables/outlier_summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mean_kurtosis = |scheme: &str, kind: &str| {
        let k: Vec<f64> = rows
            .iter()
            .filter(|r| r[col("scheme")] == scheme && r[col("kind")] == kind)
            .map(|r| r[col("kurtosis")].parse().unwrap())
            .collect();
        assert_eq!(k.len(), 5, "{scheme} {kind}: one site per layer");
        k.iter().sum::<f64>() / k.len() as f64
    };
    // stories260K's MLP hidden activations (width 172 = 43·4, a Williamson-based
    // Hadamard) are heavy-tailed; rotations bring them near Gaussian (kurtosis 3).
    let before = mean_kurtosis("none", "mlp_hidden");
    assert!(before > 8.0, "kurtosis before rotation {before}");
    for scheme in ["hadamard", "random_orthogonal"] {
        let after = mean_kurtosis(scheme, "mlp_hidden");
        assert!(
            after < 4.5 && after < before / 2.0,
            "{scheme}: {after} vs {before}"
        );
    }
    assert!(out.join("tables/outlier_channels.parquet").is_file());
    assert!(out.join("plots/kurtosis_mlp_hidden.png").is_file());
}
