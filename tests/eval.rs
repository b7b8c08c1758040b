//! End-to-end test of the evaluation study on stories260K (from the offline mirror).

mod common;

use common::{mirror, workbench};

#[test]
fn eval_of_stories260k_weight_variants() {
    let Some(mirror) = mirror() else { return };
    let dir = std::env::temp_dir().join(format!("wb-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let config = dir.join("eval.toml");
    std::fs::write(
        &config,
        "kind = \"eval\"\nseed = 3\nweights = [\"f32\", \"bf16\", \"f16\"]\n[model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 6\nlength = 40\n",
    )
    .unwrap();

    // Before fetching, the checkpoint is missing: a located config error.
    let o = workbench(&data)
        .args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(dir.join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("eval.toml:5:1: key `model.checkpoint`")
            && err.contains("workbench data fetch"),
        "{err}"
    );

    let o = workbench(&data)
        .args(["data", "fetch", "stories260K", "--mirror"])
        .arg(&mirror)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("out");
    let o = workbench(&data)
        .args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let text = std::fs::read_to_string(out.join("tables/eval.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let get = |row: usize, name: &str| -> f64 {
        rows[row][header.iter().position(|h| *h == name).unwrap()]
            .parse()
            .unwrap()
    };
    assert_eq!(rows.len(), 3);
    assert_eq!(get(0, "positions"), 6.0 * 39.0);
    // f32 against itself: identical distributions.
    assert_eq!(get(0, "kl"), 0.0);
    assert_eq!(get(0, "top1_agreement"), 1.0);
    assert!((get(0, "accept_standard") - 1.0).abs() < 1e-12);
    assert!((get(0, "accept_gumbel") - 1.0).abs() < 1e-9);
    // Rounded weights move the model a little; f16 keeps 3 more mantissa bits than bf16.
    let (kl_bf16, kl_f16) = (get(1, "kl"), get(2, "kl"));
    assert!(kl_bf16 > 0.0 && kl_bf16 < 0.05, "bf16 KL {kl_bf16}");
    assert!(
        kl_f16 > 0.0 && kl_f16 < kl_bf16,
        "f16 KL {kl_f16} vs bf16 {kl_bf16}"
    );
    // Acceptance is at most 1 and the Gumbel coupling never beats the standard rule.
    assert!(get(1, "accept_gumbel") <= get(1, "accept_standard") + 1e-12);

    // The sampled sequences are cached: a second run elsewhere gives identical tables.
    let again = dir.join("again");
    let o = workbench(&data)
        .args(["run", config.to_str().unwrap(), "--quiet", "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(std::fs::read_dir(data.join("samples")).unwrap().count() >= 1);
    assert!(
        std::fs::read(out.join("tables/eval.parquet")).unwrap()
            == std::fs::read(again.join("tables/eval.parquet")).unwrap()
    );
    assert!(
        out.join("report.html").is_file() && out.join("plots/acceptance_by_variant.png").is_file()
    );
}

#[test]
fn rotated_and_quantized_models_stay_close() {
    let Some((dir, data)) = common::with_stories260k("eval-rot") else {
        return;
    };
    let out = common::run_config(
        dir.path(),
        &data,
        "rot",
        "kind = \"eval\"\nrotations = [\"none\", \"random_orthogonal\", \"hadamard\"]\nweights = [\"f32\", \"w8\"]\n\
         [model]\ncheckpoint = \"stories260K\"\n[data]\nsequences = 4\nlength = 40\n",
    );
    let text = std::fs::read_to_string(out.join("tables/eval.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let kl = |rotation: &str, weights: &str| -> f64 {
        rows.iter()
            .find(|r| r[col("rotation")] == rotation && r[col("weights")] == weights)
            .unwrap()[col("kl")]
        .parse()
        .unwrap()
    };
    // Rotation alone changes nothing but float rounding.
    for rotation in ["random_orthogonal", "hadamard"] {
        assert!(
            kl(rotation, "f32") < 1e-8,
            "{rotation}: {}",
            kl(rotation, "f32")
        );
        // Quantizing a rotated model (its online MLP rotation kept) stays in the same
        // range as quantizing the plain one; losing the online rotation would not.
        assert!(
            kl(rotation, "w8") < 3.0 * kl("none", "w8"),
            "{rotation}: {} vs {}",
            kl(rotation, "w8"),
            kl("none", "w8")
        );
    }
}
