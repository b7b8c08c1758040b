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
    assert!(out.join("plots/histogram_mlp_hidden.png").is_file());
    for scheme in ["none", "hadamard"] {
        let map = out.join(format!("plots/absmax_map_mlp_hidden_{scheme}.svg"));
        let svg = std::fs::read_to_string(&map).unwrap();
        assert!(svg.contains("layer 4"), "{} lacks its rows", map.display());
    }
    for t in [
        "outlier_features",
        "massive_activations",
        "outlier_histograms",
    ] {
        assert!(out.join(format!("tables/{t}.csv")).is_file(), "{t}");
    }

    // Lowered thresholds: the criteria report where values occur, and on which tokens.
    let out = common::run_config(
        dir.path(),
        &data,
        "outliers_low",
        "kind = \"outliers\"\nrotations = [\"none\"]\n[criteria]\nmassive_threshold = 2.0\nmassive_ratio = 10.0\n\
         int8_threshold = 1.0\nint8_token_share = 0.05\nint8_layer_share = 0.5\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 48\n",
    );
    let text = std::fs::read_to_string(out.join("tables/massive_activations.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let hits: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(!hits.is_empty(), "no value above 2 and 10x the median");
    for h in &hits {
        let value: f64 = h[col("value")].parse().unwrap();
        assert!(value.abs() >= 2.0);
        if h[col("kind")] != "weight" {
            let position: i64 = h[col("position")].parse().unwrap();
            let token: i64 = h[col("token")].parse().unwrap();
            assert!(
                (0..48).contains(&position) && (0..512).contains(&token),
                "{h:?}"
            );
        }
    }
    let features = std::fs::read_to_string(out.join("tables/outlier_features.csv")).unwrap();
    assert!(
        features.lines().count() > 1,
        "no channel with |x| >= 1 in 5% of tokens"
    );

    // A bad threshold is a located error.
    let cfg = dir.path().join("bad_criteria.toml");
    std::fs::write(
        &cfg,
        "kind = \"outliers\"\n[criteria]\nint8_token_share = 2.0\n[model]\ncheckpoint = \"stories260K\"\n",
    )
    .unwrap();
    let err = common::rejected_config(&data, &cfg);
    assert!(err.contains("criteria.int8_token_share"), "{err}");
}
