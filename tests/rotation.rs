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
        "kind = \"rotation\"\nrotations = [\"none\", \"hadamard\", \"smoothquant\"]\n\
         weights = [\"f32\", \"w8\", \"w4\", \"w4gptq\"]\nactivation_bits = [16, 4]\nkv_bits = [16, 4]\n\
         calibration_sequences = 16\n[model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 48\n",
    );
    check_layers(&out);
    check_whole_model(&out);
}

/// Rows of a CSV table as maps from column name to cell.
fn table(path: &std::path::Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn check_whole_model(out: &std::path::Path) {
    let rows = table(&out.join("tables/rotation_model.csv"));
    // 3 schemes x 4 weight methods x 2 activation bits x 2 KV bits.
    assert_eq!(rows.len(), 3 * 4 * 2 * 2);
    let get = |scheme: &str, weights: &str, a: &str, kv: &str, what: &str| -> f64 {
        rows.iter()
            .find(|r| {
                r["scheme"] == scheme
                    && r["weights"] == weights
                    && r["activation_bits"] == a
                    && r["kv_bits"] == kv
            })
            .unwrap_or_else(|| panic!("no row {scheme} {weights} A{a} KV{kv}"))[what]
            .parse()
            .unwrap()
    };
    // Unquantized, the rotated and the smoothed models compute the original function.
    for scheme in ["none", "hadamard", "smoothquant"] {
        let kl = get(scheme, "f32", "16", "16", "kl");
        assert!(kl < 1e-6, "{scheme}: unquantized KL {kl}");
        assert!(get(scheme, "f32", "16", "16", "top1_agreement") > 0.999);
    }
    // Quantizing the KV cache to 4 bits costs something; 8-bit weights little.
    assert!(get("none", "f32", "16", "4", "kl") > 1e-3);
    assert!(get("none", "w8", "16", "16", "kl") < 0.1);
    // The Hadamard rotation helps where activation outliers dominate (A4), and
    // GPTQ beats round-to-nearest at 4 bits, with and without the rotation.
    assert!(get("hadamard", "w8", "4", "16", "kl") < get("none", "w8", "4", "16", "kl"));
    for scheme in ["none", "hadamard"] {
        assert!(
            get(scheme, "w4gptq", "16", "16", "kl") < get(scheme, "w4", "16", "16", "kl"),
            "{scheme}: GPTQ does not beat RTN: {} vs {}",
            get(scheme, "w4gptq", "16", "16", "kl"),
            get(scheme, "w4", "16", "16", "kl")
        );
    }
    // Acceptance as a drafter falls with the quality of the quantized model.
    assert!(
        get("none", "w8", "16", "16", "accept_standard")
            > get("none", "w4", "16", "16", "accept_standard")
    );
}

fn check_layers(out: &std::path::Path) {
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
    // f32 weights are measured only with quantized activations.
    assert_eq!(rows.len(), 3 * (3 * 2 + 1));
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
    // GPTQ, calibrated on other tokens, beats RTN in layer output error.
    for scheme in ["none", "hadamard", "smoothquant"] {
        assert!(
            get(scheme, "w4gptq", "16", "mean_sqnr_db") > get(scheme, "w4", "16", "mean_sqnr_db"),
            "{scheme}"
        );
    }
    // SmoothQuant's scaling helps 4-bit activations, a rotation more; GPTQ trades
    // a larger weight error for a smaller output error.
    let a4 = |scheme| get(scheme, "f32", "4", "mean_sqnr_db");
    assert!(a4("smoothquant") > a4("none"));
    assert!(a4("hadamard") > a4("smoothquant"));
    assert!(
        get("none", "w4gptq", "16", "mean_weight_rel_error")
            > get("none", "w4", "16", "mean_weight_rel_error")
    );
}

#[test]
fn bad_rotation_configs_name_the_key() {
    let Some(data) = common::mirror() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (line, key) in [
        (
            "activation_granularity = \"channel\"",
            "activation_granularity",
        ),
        ("activation_clip_ratio = 0.0", "activation_clip_ratio"),
        ("kv_bits = [1]", "kv_bits[0]"),
        ("smoothquant_alpha = 1.5", "smoothquant_alpha"),
        ("gptq_damp = -1.0", "gptq_damp"),
        ("calibration_sequences = 0", "calibration_sequences"),
        ("kv_group = 0", "kv_group"),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(
            &cfg,
            format!(
                "kind = \"rotation\"\nrotations = [\"none\", \"smoothquant\"]\nweights = [\"w4gptq\"]\n{line}\n\
                 [model]\ncheckpoint = \"stories260K\"\n"
            ),
        )
        .unwrap();
        let err = common::rejected_config(&data, &cfg);
        assert!(
            err.contains(key) && err.contains("bad.toml"),
            "{line}: {err}"
        );
    }
}
