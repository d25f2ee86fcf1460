//! Every shipped config loads; unknown, missing and inconsistent keys are errors naming the key.

use std::path::PathBuf;

use moeplan::config::{ConfigError, HardwareConfig, ModelConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_configs_load() {
    let mut models = 0;
    for e in std::fs::read_dir(root().join("configs/models")).unwrap() {
        let m = ModelConfig::load(&e.unwrap().path()).unwrap();
        assert!(m.shape().check().is_ok());
        models += 1;
    }
    assert_eq!(models, 5);
    let v3 = ModelConfig::load(&root().join("configs/models/deepseek-v3.toml")).unwrap();
    assert_eq!(
        (v3.moe_layers, v3.experts, v3.top_k, v3.first_moe_layer),
        (58, 256, 8, 3)
    );
    let mut hw = 0;
    for e in std::fs::read_dir(root().join("configs/hardware")).unwrap() {
        HardwareConfig::load(&e.unwrap().path()).unwrap();
        hw += 1;
    }
    assert!(hw >= 3);
    let cluster = HardwareConfig::load(&root().join("configs/hardware/h100-2x8-ib.toml")).unwrap();
    assert_eq!((cluster.gpus(), cluster.node_of(9)), (16, 1));
}

#[test]
fn unknown_key_is_named() {
    let e = ModelConfig::load(&root().join("tests/fixtures/configs/model_unknown_key.toml"))
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }));
    assert!(
        msg.contains("expert_count") && msg.contains("model_unknown_key.toml"),
        "{msg}"
    );
}

#[test]
fn missing_key_is_named() {
    let msg = ModelConfig::load(&root().join("tests/fixtures/configs/model_missing_key.toml"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("top_k"), "{msg}");
}

#[test]
fn inconsistent_value_is_named() {
    let e = HardwareConfig::load(&root().join("tests/fixtures/configs/hardware_zero_nodes.toml"))
        .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Invalid { key, .. } if key == "nodes"),
        "{e}"
    );
}
