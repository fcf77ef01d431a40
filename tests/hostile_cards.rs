//! Model cards are files anyone can edit: sizes that would make emoscope allocate
//! gigabytes, or an architecture whose input the features do not provide, are refused at
//! load with an error naming card.json and the field, before anything is allocated.

use std::path::Path;

fn load_with(edit: impl Fn(&mut serde_json::Value)) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/fusion");
    let dir = tempfile::tempdir().unwrap();
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("card.json")).unwrap()).unwrap();
    edit(&mut card);
    std::fs::write(dir.path().join("card.json"), card.to_string()).unwrap();
    std::fs::copy(
        root.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    match emoscope::model::Classifier::load(dir.path(), &candle_core::Device::Cpu) {
        Ok(_) => "loaded".into(),
        Err(e) => e.to_string(),
    }
}

/// A change to a card's JSON.
type Edit = fn(&mut serde_json::Value);

#[test]
fn oversized_or_inconsistent_cards_are_refused_naming_the_field() {
    assert_eq!(
        load_with(|_| {}),
        "loaded",
        "the shipped card itself must load"
    );
    let cases: [(&str, Edit); 12] = [
        ("width 1000000", |c| c["arch"]["width"] = 1_000_000.into()),
        ("width 0", |c| c["arch"]["width"] = 0.into()),
        ("n_fft", |c| c["features"]["n_fft"] = (1u64 << 30).into()),
        ("n_mels", |c| c["features"]["n_mels"] = 100_000.into()),
        ("sample_rate", |c| {
            c["features"]["sample_rate"] = 4_000_000_000u64.into()
        }),
        // 60 s windows with a hop of 1 sample: 64 x 960000 values.
        ("window_seconds", |c| {
            c["features"]["window_seconds"] = 60.0.into();
            c["features"]["hop_length"] = 1.into();
        }),
        ("\"prosody\": false", |c| {
            c["features"]["prosody"] = false.into()
        }),
        // Ensembles: more members than allowed, one nested in another, a temperature that
        // would turn a member's probabilities into NaN.
        ("17 members", |c| {
            let m = serde_json::json!({"arch": c["arch"].clone(), "temperature": 1.0});
            c["arch"] = serde_json::json!({"name": "ensemble", "members": vec![m; 17]});
        }),
        ("member 0 is itself an ensemble", |c| {
            let inner = serde_json::json!({"arch": {"name": "ensemble", "members": []}, "temperature": 1.0});
            c["arch"] = serde_json::json!({"name": "ensemble", "members": [inner]});
        }),
        // Sixteen LSTMs of the largest size allowed alone: gigabytes of weights.
        ("parameters in all", |c| {
            let m = serde_json::json!({"arch": {"name": "paper1_lstm", "hidden": 4096}, "temperature": 1.0});
            c["arch"] = serde_json::json!({"name": "ensemble", "members": vec![m; 16]});
        }),
        ("member 1 has temperature 0", |c| {
            let m = serde_json::json!({"arch": c["arch"].clone(), "temperature": 1.0});
            let z = serde_json::json!({"arch": c["arch"].clone(), "temperature": 0.0});
            c["arch"] = serde_json::json!({"name": "ensemble", "members": [m, z]});
        }),
        // A profile ramp of 0 would divide by zero.
        ("member 1 has profile_ramp 0", |c| {
            let m = serde_json::json!({"arch": c["arch"].clone(), "temperature": 1.0});
            let z = serde_json::json!({"arch": c["arch"].clone(), "temperature": 1.0, "profile_ramp": 0.0});
            c["arch"] = serde_json::json!({"name": "ensemble", "members": [m, z]});
        }),
    ];
    for (what, edit) in cases {
        let e = load_with(edit);
        assert!(e.contains("card.json") && e.contains(what), "{what}: {e}");
    }
}

/// A card.json larger than a card can be (padding or one huge array) is refused by its size,
/// naming the file, before it is read; a calm gate of the wrong size is refused naming it.
#[test]
fn a_card_too_large_or_with_a_misshapen_calm_gate_is_refused_by_name() {
    let e = load_with(|c| c["notes"] = "x".repeat(2 << 20).into());
    assert!(
        e.contains("card.json") && e.contains("more than the 1048576"),
        "{e}"
    );
    let e = encoder_card_error(|card| {
        card["arch"]["calm"] = true.into();
        card["arch"]["enrol"] = false.into();
        card["features"]["encoder"]["enrolment"] = false.into();
        card["arch"]["profile_ramp"] = 2.0.into();
        card["features"]["normalisation"] = "speaker".into();
        card["features"]["encoder"]["calm_gate"] =
            serde_json::json!({"layer": 3, "weight": vec![0.0; 511], "bias": 0.0});
    });
    assert!(
        e.contains("card.json") && e.contains("calm_gate weight") && e.contains("511 values"),
        "{e}"
    );
}

/// The error loading a head on the encoder's card.json (the former default, one head)
/// after `edit` gives.
fn encoder_card_error(edit: impl Fn(&mut serde_json::Value)) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/encoder_head_single");
    let dir = tempfile::tempdir().unwrap();
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("card.json")).unwrap()).unwrap();
    edit(&mut card);
    std::fs::write(dir.path().join("card.json"), card.to_string()).unwrap();
    emoscope::model::ModelCard::load(dir.path())
        .unwrap_err()
        .to_string()
}

/// An encoder level outside any microphone's range is refused by name.
#[test]
fn an_encoder_card_with_an_absurd_level_is_refused_by_name() {
    for bad in [serde_json::json!(1e9), serde_json::json!(-61.0)] {
        let e = encoder_card_error(|card| card["features"]["encoder"]["level_db"] = bad.clone());
        assert!(
            e.contains("card.json") && e.contains("level_db") && e.contains("-60 to 60 dB"),
            "{bad}: {e}"
        );
    }
}
