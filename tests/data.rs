//! Integration tests of `workbench::data`: the manifest, fetching from a mirror folder with
//! checksums, offline failure of downloads, and locating fetched files.
//!
//! No test touches the internet: downloads are pointed at an unroutable local address.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use workbench::data::{
    cache_dir, fetch, locate, sha256_file, Dataset, FetchOptions, Manifest, Source,
};

/// A fresh temporary folder, removed when dropped.
fn temp_dir(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("workbench-data-test-{label}-"))
        .tempdir()
        .unwrap()
}

/// Every file (not folder) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The offline mirror kept beside the repository, if this checkout has one.
fn real_mirror() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: skipping: no dataset mirror at {} in this checkout",
            dir.display()
        );
        None
    }
}

fn options(mirror: Option<&Path>, cache: &Path) -> FetchOptions {
    FetchOptions {
        mirror: mirror.map(Path::to_path_buf),
        cache: cache.to_path_buf(),
        timeout: Duration::from_secs(2),
    }
}

/// A mirror folder holding one small file, and a manifest whose single entry matches it.
fn synthetic(mirror: &Path, url: &str) -> (Manifest, Dataset) {
    let file = mirror.join("small").join("hello.txt");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "hello, mirror\n").unwrap();
    let dataset = Dataset {
        name: "hello".into(),
        path: "small/hello.txt".into(),
        url: url.into(),
        sha256: sha256_file(&file).unwrap(),
        bytes: fs::metadata(&file).unwrap().len(),
        licence: "MIT".into(),
        what: "a test file".into(),
    };
    let manifest = Manifest {
        datasets: vec![dataset.clone()],
    };
    (manifest, dataset)
}

const OFFLINE_URL: &str = "http://127.0.0.1:9/x";

#[test]
fn embedded_manifest_has_the_four_datasets() {
    let m = Manifest::embedded();
    let mut names = m.names();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "stories260K",
            "tinyshakespeare",
            "wikitext2-test",
            "wikitext2-valid"
        ]
    );
    let shakespeare = m.find("tinyshakespeare").unwrap();
    assert_eq!(shakespeare.path, "tinyshakespeare/input.txt");
    assert_eq!(shakespeare.bytes, 1_115_394);
    assert_eq!(
        shakespeare.sha256,
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    );
    // The compiled-in copy is the file in the repository.
    let on_disk =
        Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/manifest.toml"))
            .unwrap();
    assert_eq!(on_disk, m);
}

#[test]
fn fetch_all_from_the_real_mirror_then_reuse_the_cache() {
    let Some(mirror) = real_mirror() else { return };
    let cache = temp_dir("real");
    let manifest = Manifest::embedded();
    let opts = options(Some(&mirror), cache.path());

    let first = fetch(&manifest, &[], &opts).unwrap();
    assert_eq!(first.len(), 4);
    for (got, dataset) in first.iter().zip(&manifest.datasets) {
        assert_eq!(got.name, dataset.name);
        assert_eq!(got.source, Source::Mirror(mirror.join(&dataset.path)));
        assert_eq!(got.path, cache.path().join(&dataset.path));
        assert_eq!(got.bytes, dataset.bytes);
        assert_eq!(fs::metadata(&got.path).unwrap().len(), dataset.bytes);
        assert_eq!(sha256_file(&got.path).unwrap(), dataset.sha256);
        assert_eq!(
            locate(&manifest, &dataset.name, &options(None, cache.path())).unwrap(),
            got.path
        );
    }
    // Only the four files, no temporary files left behind.
    assert_eq!(files_under(cache.path()).len(), 4);

    let second = fetch(&manifest, &[], &opts).unwrap();
    assert_eq!(second.len(), 4);
    assert!(second.iter().all(|f| f.source == Source::AlreadyCached));
    // Without a mirror too: nothing needs downloading.
    let third = fetch(
        &manifest,
        &["wikitext2-test".to_string()],
        &options(None, cache.path()),
    )
    .unwrap();
    assert_eq!(third[0].source, Source::AlreadyCached);

    // A damaged cached file is replaced.
    let victim = cache.path().join("wikitext-2/valid.txt");
    fs::write(&victim, "not wikitext").unwrap();
    let again = fetch(&manifest, &["wikitext2-valid".to_string()], &opts).unwrap();
    assert_eq!(
        again[0].source,
        Source::Mirror(mirror.join("wikitext-2/valid.txt"))
    );
    assert_eq!(
        sha256_file(&victim).unwrap(),
        manifest.find("wikitext2-valid").unwrap().sha256
    );
}

#[test]
fn locate_uses_the_mirror_in_place_and_says_how_to_fetch() {
    let Some(mirror) = real_mirror() else { return };
    let cache = temp_dir("locate");
    let manifest = Manifest::embedded();
    let found = locate(
        &manifest,
        "stories260K",
        &options(Some(&mirror), cache.path()),
    )
    .unwrap();
    assert_eq!(found, mirror.join("stories260K/stories260K.bin"));
    assert!(
        files_under(cache.path()).is_empty(),
        "locate copies nothing"
    );

    let err = locate(&manifest, "stories260K", &options(None, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workbench data fetch stories260K --mirror DIR"),
        "{err}"
    );
}

#[test]
fn corrupted_mirror_file_is_rejected_and_nothing_is_left() {
    let mirror = temp_dir("bad-mirror");
    let cache = temp_dir("bad-cache");
    let (manifest, dataset) = synthetic(mirror.path(), OFFLINE_URL);
    let file = mirror.path().join(&dataset.path);
    fs::write(&file, "hello, mirrog\n").unwrap(); // same size, one byte altered
    let actual = sha256_file(&file).unwrap();

    let err = fetch(&manifest, &[], &options(Some(mirror.path()), cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`hello`"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(&dataset.sha256), "{err}");
    assert!(err.contains(&actual), "{err}");
    assert!(!cache.path().join(&dataset.path).exists());
    assert!(
        files_under(cache.path()).is_empty(),
        "{:?}",
        files_under(cache.path())
    );

    // A longer file fails the size check the same way.
    fs::write(&file, "hello, mirror\nand more\n").unwrap();
    let err = fetch(&manifest, &[], &options(Some(mirror.path()), cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(files_under(cache.path()).is_empty());

    // locate verifies the mirror's file too.
    let err = locate(
        &manifest,
        "hello",
        &options(Some(mirror.path()), cache.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn corrupted_copy_of_the_real_mirror_is_rejected() {
    let Some(real) = real_mirror() else { return };
    let mirror = temp_dir("altered");
    let cache = temp_dir("altered-cache");
    let manifest = Manifest::embedded();
    let dataset = manifest.find("tinyshakespeare").unwrap();
    let file = mirror.path().join(&dataset.path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut bytes = fs::read(real.join(&dataset.path)).unwrap();
    bytes[1000] ^= 0x20;
    fs::write(&file, &bytes).unwrap();
    let actual = sha256_file(&file).unwrap();

    let err = fetch(
        &manifest,
        &["tinyshakespeare".to_string()],
        &options(Some(mirror.path()), cache.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tinyshakespeare"), "{err}");
    assert!(
        err.contains(&dataset.sha256) && err.contains(&actual),
        "{err}"
    );
    assert!(files_under(cache.path()).is_empty());
}

#[test]
fn good_synthetic_mirror_replaces_a_wrong_cached_file() {
    let mirror = temp_dir("good-mirror");
    let cache = temp_dir("good-cache");
    let (manifest, dataset) = synthetic(mirror.path(), OFFLINE_URL);
    let dest = cache.path().join(&dataset.path);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, "stale").unwrap();

    let got = fetch(&manifest, &[], &options(Some(mirror.path()), cache.path())).unwrap();
    assert_eq!(
        got[0].source,
        Source::Mirror(mirror.path().join(&dataset.path))
    );
    assert_eq!(fs::read_to_string(&dest).unwrap(), "hello, mirror\n");
    assert_eq!(files_under(cache.path()), std::slice::from_ref(&dest));
    // Duplicate names are fetched once.
    let names = vec!["hello".to_string(), "hello".to_string()];
    let got = fetch(&manifest, &names, &options(None, cache.path())).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source, Source::AlreadyCached);
}

#[test]
fn missing_mirror_file_names_the_expected_path() {
    let mirror = temp_dir("empty-mirror");
    let cache = temp_dir("empty-cache");
    let manifest = Manifest::embedded();
    let err = fetch(
        &manifest,
        &["wikitext2-test".to_string()],
        &options(Some(mirror.path()), cache.path()),
    )
    .unwrap_err()
    .to_string();
    let expected = mirror.path().join("wikitext-2").join("test.txt");
    assert!(err.contains(&expected.display().to_string()), "{err}");
    assert!(err.contains("wikitext2-test"), "{err}");
    assert!(files_under(cache.path()).is_empty());
}

#[test]
fn unknown_name_lists_the_known_ones() {
    let cache = temp_dir("unknown");
    let manifest = Manifest::embedded();
    let err = fetch(
        &manifest,
        &["tinyshakespear".to_string()],
        &options(None, cache.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown dataset `tinyshakespear`"), "{err}");
    for name in manifest.names() {
        assert!(err.contains(name), "{err}");
    }
    let err = locate(&manifest, "nope", &options(None, cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown dataset `nope`"), "{err}");
}

#[test]
fn offline_download_fails_fast_and_points_to_mirror() {
    let mirror = temp_dir("unused");
    let cache = temp_dir("offline");
    let (manifest, _) = synthetic(mirror.path(), OFFLINE_URL);
    let start = Instant::now();
    let err = fetch(&manifest, &[], &options(None, cache.path()))
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(err.contains("download of `hello`"), "{err}");
    assert!(err.contains(OFFLINE_URL), "{err}");
    assert!(err.contains("--mirror"), "{err}");
    assert!(files_under(cache.path()).is_empty());
}

/// Serves one HTTP request on a loopback port with `body`, then stops; returns the URL.
fn serve_once(body: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/small/hello.txt", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    });
    (url, handle)
}

#[test]
fn download_from_a_local_server_is_verified() {
    let scratch = temp_dir("dl-src");
    let cache = temp_dir("dl-cache");
    let (url, server) = serve_once(b"hello, mirror\n");
    let (manifest, dataset) = synthetic(scratch.path(), &url);
    let got = fetch(&manifest, &[], &options(None, cache.path())).unwrap();
    server.join().unwrap();
    assert_eq!(got[0].source, Source::Downloaded);
    assert_eq!(sha256_file(&got[0].path).unwrap(), dataset.sha256);
    assert_eq!(files_under(cache.path()), [got[0].path.clone()]);
}

#[test]
fn download_with_wrong_content_leaves_nothing() {
    let scratch = temp_dir("dl-bad-src");
    let cache = temp_dir("dl-bad-cache");
    let (url, server) = serve_once(b"hello, mirrog\n");
    let (manifest, dataset) = synthetic(scratch.path(), &url);
    let err = fetch(&manifest, &[], &options(None, cache.path()))
        .unwrap_err()
        .to_string();
    server.join().unwrap();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&dataset.sha256), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(files_under(cache.path()).is_empty());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let scratch = temp_dir("silent-src");
    let cache = temp_dir("silent-cache");
    // Connections are queued by the kernel but never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let (manifest, _) = synthetic(scratch.path(), &url);
    let mut opts = options(None, cache.path());
    opts.timeout = Duration::from_millis(500);
    let start = Instant::now();
    let err = fetch(&manifest, &[], &opts).unwrap_err().to_string();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(err.contains("--mirror"), "{err}");
    assert!(files_under(cache.path()).is_empty());
    drop(listener);
}

#[test]
fn malformed_manifest_errors_name_file_line_and_key() {
    let dir = temp_dir("manifest");
    let path = dir.path().join("manifest.toml");
    let good =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/manifest.toml"))
            .unwrap();

    // A syntax error: an unterminated string.
    let broken = good.replacen("licence = \"MIT\"", "licence = \"MIT", 1);
    let line = broken.lines().position(|l| l == "licence = \"MIT").unwrap() + 1;
    fs::write(&path, &broken).unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:{line}:", path.display())),
        "{err}"
    );

    // A value of the wrong type: the key is named.
    let wrong = good.replacen("bytes = 1115394", "bytes = \"1115394\"", 1);
    let line = wrong
        .lines()
        .position(|l| l.starts_with("bytes = \""))
        .unwrap()
        + 1;
    fs::write(&path, &wrong).unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:{line}:9:", path.display())),
        "{err}"
    );
    assert!(err.contains("dataset[0].bytes"), "{err}");

    // A missing file.
    let err = Manifest::load(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn cache_dir_follows_the_environment() {
    // Reads the environment only: changing it here would race with other tests.
    let dir = cache_dir();
    match std::env::var_os("WORKBENCH_DATA_DIR").filter(|d| !d.is_empty()) {
        Some(d) => assert_eq!(dir, PathBuf::from(d)),
        None => assert!(
            dir.ends_with(".cache/workbench/datasets") || dir.ends_with("workbench/datasets")
        ),
    }
}
