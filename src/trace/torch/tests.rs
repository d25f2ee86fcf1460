//! Round trips through the writer, refusals of what torch files may not hold, and proptests.

use proptest::prelude::*;

use super::*;

fn zip_with(pkl: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("x/data.pkl", o).unwrap();
    zip.write_all(pkl).unwrap();
    for (k, b) in storages {
        zip.start_file(format!("x/data/{k}"), o).unwrap();
        zip.write_all(b).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn roundtrip(v: &TorchValue) -> TorchFile {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.pt");
    write_torch(&p, v).unwrap();
    TorchFile::open(&p).unwrap()
}

#[test]
fn writes_and_reads_back_a_dict_of_tensors() {
    let t = Tensor {
        dtype: DType::I32,
        shape: vec![2, 3],
        data: TensorData::I32(vec![1, -2, 3, 4, 5, 70000]),
    };
    let v = TorchValue::Dict(vec![
        ("logical_count".into(), TorchValue::Tensor(t.clone())),
        ("n".into(), TorchValue::Int(-5_000_000_000)),
        ("name".into(), TorchValue::Str("é".into())),
        ("f".into(), TorchValue::Float(0.25)),
        ("none".into(), TorchValue::None),
        (
            "l".into(),
            TorchValue::List(vec![TorchValue::Int(1), TorchValue::Int(300)]),
        ),
    ]);
    let f = roundtrip(&v);
    let root = f.root();
    let Node::Tensor(r) = f.node(f.get(root, "logical_count").unwrap()) else {
        panic!()
    };
    assert_eq!(f.tensor(r).unwrap(), t);
    assert_eq!(
        f.node(f.get(root, "n").unwrap()),
        &Node::Int(-5_000_000_000)
    );
    assert_eq!(f.node(f.get(root, "name").unwrap()), &Node::Str("é".into()));
    assert_eq!(f.node(f.get(root, "f").unwrap()), &Node::Float(0.25));
    assert_eq!(f.node(f.get(root, "none").unwrap()), &Node::None);
    let Node::List(l) = f.node(f.get(root, "l").unwrap()) else {
        panic!()
    };
    assert_eq!(f.node(l[1]), &Node::Int(300));
}

#[test]
fn any_other_global_is_refused_by_name() {
    let pkl = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.";
    let e = TorchFile::from_bytes(&zip_with(pkl, &[])).unwrap_err();
    assert!(
        e.to_string().contains("global os.system is not allowed"),
        "{e}"
    );
    let pkl = b"\x80\x02ctorch\nHalfStorage\n.";
    let e = TorchFile::from_bytes(&zip_with(pkl, &[])).unwrap_err();
    assert!(e.to_string().contains("torch.HalfStorage"), "{e}");
}

#[test]
fn strided_and_offset_views_are_gathered() {
    // A [2, 2] view of a 6-element int64 storage, transposed, from element 1.
    let pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nLongStorage\nX\x01\x00\x00\x000X\x06\x00\x00\x00cuda:0K\x06tQK\x01K\x02K\x02\x86K\x01K\x02\x86\x89ccollections\nOrderedDict\n)RtR.";
    let data: Vec<u8> = (0i64..6).flat_map(|x| (x * 10).to_le_bytes()).collect();
    let f = TorchFile::from_bytes(&zip_with(pkl, &[("0", &data)])).unwrap();
    let Node::Tensor(r) = f.node(f.root()) else {
        panic!()
    };
    let t = f.tensor(r).unwrap();
    assert_eq!(t.shape, vec![2, 2]);
    // Elements at offset 1 + i*1 + j*2: [[1, 3], [2, 4]] * 10.
    assert_eq!(t.data, TensorData::I64(vec![10, 30, 20, 40]));
}

#[test]
fn a_view_past_its_storage_is_an_error() {
    let pkl = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nIntStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00K\x05\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR.";
    let data = [0u8; 16];
    let f = TorchFile::from_bytes(&zip_with(pkl, &[("0", &data)])).unwrap();
    let Node::Tensor(r) = f.node(f.root()) else {
        panic!()
    };
    let e = f.tensor(r).unwrap_err().to_string();
    assert!(e.contains("reaches element 4, storage has 4"), "{e}");
}

#[test]
fn truncated_archives_and_pickles_are_errors() {
    let v = TorchValue::Dict(vec![(
        "a".into(),
        TorchValue::Tensor(Tensor {
            dtype: DType::I64,
            shape: vec![3],
            data: TensorData::I64(vec![1, 2, 3]),
        }),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.pt");
    write_torch(&p, &v).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            TorchFile::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let e = TorchFile::from_bytes(&zip_with(b"\x80\x02}(X\x01\x00", &[])).unwrap_err();
    assert!(matches!(e, TorchError::Pickle { .. }), "{e}");
}

#[test]
fn shared_objects_stay_shared_and_cost_one_value() {
    // l = []; d = {'a': l, 'b': l}; l.append(1) after both references: BINGET must see it.
    let pkl = b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01X\x01\x00\x00\x00bh\x01uh\x01K\x01a0.";
    let f = TorchFile::from_bytes(&zip_with(pkl, &[])).unwrap();
    let Node::List(b) = f.node(f.get(f.root(), "b").unwrap()) else {
        panic!()
    };
    assert_eq!(b.len(), 1);
}

fn tensor_strategy() -> impl Strategy<Value = Tensor> {
    (prop::collection::vec(0usize..4, 0..4), 0u8..3).prop_flat_map(|(shape, d)| {
        let n: usize = shape.iter().product();
        let shape2 = shape.clone();
        match d {
            0 => prop::collection::vec(any::<i32>(), n)
                .prop_map(move |v| Tensor {
                    dtype: DType::I32,
                    shape: shape2.clone(),
                    data: TensorData::I32(v),
                })
                .boxed(),
            1 => prop::collection::vec(any::<i64>(), n)
                .prop_map(move |v| Tensor {
                    dtype: DType::I64,
                    shape: shape2.clone(),
                    data: TensorData::I64(v),
                })
                .boxed(),
            _ => prop::collection::vec(-1e6f32..1e6, n)
                .prop_map(move |v| Tensor {
                    dtype: DType::F32,
                    shape: shape2.clone(),
                    data: TensorData::F32(v),
                })
                .boxed(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_tensors_read_back(ts in prop::collection::vec(tensor_strategy(), 1..4)) {
        let v = TorchValue::Dict(
            ts.iter().enumerate().map(|(i, t)| (format!("t{i}"), TorchValue::Tensor(t.clone()))).collect(),
        );
        let f = roundtrip(&v);
        for (i, t) in ts.iter().enumerate() {
            let Node::Tensor(r) = f.node(f.get(f.root(), &format!("t{i}")).unwrap()) else { panic!() };
            prop_assert_eq!(&f.tensor(r).unwrap(), t);
        }
    }

    #[test]
    fn arbitrary_pickles_never_panic(pkl in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(f) = TorchFile::from_bytes(&zip_with(&pkl, &[("0", &[0u8; 64])])) {
            for n in &f.pickle.nodes {
                if let Node::Tensor(r) = n { let _ = f.tensor(r); }
            }
        }
    }

    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let v = TorchValue::Dict(vec![("a".into(), TorchValue::Tensor(Tensor {
            dtype: DType::I32, shape: vec![2, 2], data: TensorData::I32(vec![1, 2, 3, 4]),
        }))]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pt");
        write_torch(&p, &v).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        for (i, b) in flips { let i = i.index(bytes.len()); bytes[i] = b; }
        if let Ok(f) = TorchFile::from_bytes(&bytes) {
            for n in &f.pickle.nodes {
                if let Node::Tensor(r) = n { let _ = f.tensor(r); }
            }
        }
    }
}
