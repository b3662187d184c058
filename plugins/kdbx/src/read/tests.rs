//! ov's reader against the `keepass` crate: the same tree from every kind
//! of file the crate writes, the same derived keys, and clear errors (never
//! a panic, never unbounded memory) for damaged and hostile files.

use std::io::Write;

use cipher::{BlockModeEncrypt, KeyIvInit, StreamCipher, block_padding::Pkcs7};
use keepass::config::{
    CompressionConfig, DatabaseConfig, InnerCipherConfig, KdfConfig, OuterCipherConfig,
};
use keepass::{Database, DatabaseKey};
use sha2::{Digest, Sha256, Sha512};

use super::*;
use crate::load::tree_of;

const PW: &str = "pässwörd with spaces ";

fn cheap_argon2(id: bool) -> KdfConfig {
    if id {
        KdfConfig::Argon2id {
            iterations: 2,
            memory: 1024 * 1024,
            parallelism: 2,
            version: rust_argon2::Version::Version13,
        }
    } else {
        KdfConfig::Argon2 {
            iterations: 2,
            memory: 1024 * 1024,
            parallelism: 3,
            version: rust_argon2::Version::Version13,
        }
    }
}

/// A database with groups, nested groups, non-ASCII names, protected and
/// unprotected values, an empty value, a recycle bin and `n` bulk entries.
fn sample(config: DatabaseConfig, n: usize) -> Database {
    let mut db = Database::with_config(config);
    db.root_mut().name = "ov".into();
    {
        let mut root = db.root_mut();
        let mut g = root.add_group();
        g.name = "grüße".into();
        let mut e = g.add_entry();
        e.set_unprotected("Title", "schlüssel ☃");
        e.set_protected("Password", "geheim — ü & <tag> \"q\" 'a'\n second line");
        let mut e = g.add_entry();
        e.set_unprotected("Title", "plain");
        e.set_unprotected("Password", "not protected &amp; literal");
        let mut e = g.add_entry();
        e.set_unprotected("Title", "empty");
        e.set_protected("Password", "");
        let mut sub = g.add_group();
        sub.name = "deeper".into();
        let mut e = sub.add_entry();
        e.set_unprotected("Title", "k");
        e.set_protected("Password", "  padded  ");
        e.set_protected("Notes", "a protected note between");
        let mut bulk = root.add_group();
        bulk.name = "bulk".into();
        for i in 0..n {
            let mut e = bulk.add_entry();
            e.set_unprotected("Title", format!("entry-{i}"));
            e.set_protected("Password", format!("value-{i}-{}", "x".repeat(i % 40)));
        }
        let mut at_root = root.add_entry();
        at_root.set_unprotected("Title", "at-root");
        at_root.set_protected("Password", "root value");
    }
    db
}

fn save(db: &Database, key: DatabaseKey) -> Vec<u8> {
    let mut out = Vec::new();
    db.save(&mut out, key).expect("keepass saves");
    out
}

/// Open with ov's reader from the password (and key file).
fn ours(bytes: &[u8], pw: Option<&str>, key_file: Option<&[u8]>) -> Result<Tree, ReadError> {
    let header = header::parse(bytes)?;
    let composite = composite_key(pw, key_file);
    let key = transform(&header.kdf, &composite)?;
    open(bytes, &header, &key)
}

/// Every entry as (service path, title, password), in document order per group.
fn flat(t: &Tree) -> Vec<(Vec<String>, Option<String>, Option<String>)> {
    let mut out: Vec<_> = t
        .entries
        .iter()
        .map(|e| {
            let mut path = Vec::new();
            let mut g = Some(e.group);
            while let Some(i) = g {
                path.push(t.groups[i].name.clone());
                g = t.groups[i].parent;
            }
            path.reverse();
            (
                path,
                e.title.clone(),
                e.password.as_ref().map(|p| p.to_string()),
            )
        })
        .collect();
    out.sort();
    out
}

fn assert_same(bytes: &[u8], pw: Option<&str>, key_file: Option<&[u8]>) {
    let mut key = DatabaseKey::new();
    if let Some(pw) = pw {
        key = key.with_password(pw);
    }
    if let Some(kf) = key_file {
        key = key.with_keyfile(&mut &kf[..]).expect("key file");
    }
    let theirs = tree_of(&Database::parse(bytes, key).expect("keepass opens it"));
    let mine = ours(bytes, pw, key_file).expect("ov's reader opens it");
    assert_eq!(flat(&mine), flat(&theirs));
    assert_eq!(mine.list(None), theirs.list(None));
    assert_eq!(
        mine.recycle_bin.map(|i| mine.groups[i].name.clone()),
        theirs.recycle_bin.map(|i| theirs.groups[i].name.clone())
    );
}

#[test]
fn every_cipher_kdf_and_stream_the_crate_writes_reads_the_same() {
    let kdfs = [
        KdfConfig::Aes { rounds: 1000 },
        cheap_argon2(false),
        cheap_argon2(true),
    ];
    let outers = [OuterCipherConfig::AES256, OuterCipherConfig::ChaCha20];
    let inners = [
        InnerCipherConfig::ChaCha20,
        InnerCipherConfig::Salsa20,
        InnerCipherConfig::Plain,
    ];
    let compressions = [CompressionConfig::GZip, CompressionConfig::None];
    for kdf in &kdfs {
        for outer in &outers {
            for inner in &inners {
                for compression in &compressions {
                    let mut config = DatabaseConfig::default();
                    config.kdf_config = kdf.clone();
                    config.outer_cipher_config = outer.clone();
                    config.inner_cipher_config = inner.clone();
                    config.compression_config = compression.clone();
                    let bytes = save(&sample(config, 3), DatabaseKey::new().with_password(PW));
                    assert_same(&bytes, Some(PW), None);
                }
            }
        }
    }
}

#[test]
fn five_hundred_entries_and_every_key_kind_read_the_same() {
    let mut config = DatabaseConfig::default();
    config.kdf_config = cheap_argon2(true);
    let db = sample(config, 500);
    let raw32 = [7u8; 32];
    let hex64 = b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".to_vec();
    let xml_v2 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<KeyFile>\n  <Meta><Version>2.0</Version></Meta>\n  <Key>\n    <Data Hash=\"76A8F5C8\">\n      A3B2C1D0 11223344 55667788 99AABBCC\n      DDEEFF00 10203040 50607080 90A0B0C0\n    </Data>\n  </Key>\n</KeyFile>\n".to_vec();
    let xml_v1 = b"<KeyFile><Meta><Version>1.00</Version></Meta><Key><Data>AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=</Data></Key></KeyFile>".to_vec();
    let other = b"any file at all, hashed whole".to_vec();
    for kf in [raw32.to_vec(), hex64, xml_v2, xml_v1, other] {
        for pw in [Some(PW), None] {
            let mut key = DatabaseKey::new()
                .with_keyfile(&mut &kf[..])
                .expect("key file");
            if let Some(pw) = pw {
                key = key.with_password(pw);
            }
            let bytes = save(&db, key);
            assert_same(&bytes, pw, Some(&kf));
            // The key file is a factor: without it, the key is wrong.
            if pw.is_some() {
                assert!(matches!(ours(&bytes, pw, None), Err(ReadError::WrongKey)));
            }
        }
    }
    let bytes = save(&db, DatabaseKey::new().with_password(PW));
    assert_same(&bytes, Some(PW), None);
    assert_eq!(
        ours(&bytes, Some(PW), None)
            .expect("opens")
            .list(None)
            .len(),
        504
    );
}

/// The derived key is byte for byte the one the `keepass` crate derives:
/// its Argon2 is `rust-argon2` with this configuration (its kdf.rs), and
/// a database it saved opens only if ours matches (the header HMAC).
#[test]
fn the_derivation_matches_the_keepass_crate() {
    let composite = composite_key(Some(PW), None);
    for (variant, rv) in [
        (header::Argon2Variant::D, rust_argon2::Variant::Argon2d),
        (header::Argon2Variant::Id, rust_argon2::Variant::Argon2id),
    ] {
        for (memory, iterations, parallelism) in [
            (1024 * 1024, 3, 1),
            (8 * 1024 * 1024, 2, 4),
            (crate::ARGON2_MEMORY, 2, crate::ARGON2_PARALLELISM),
        ] {
            let salt = [0x5au8; 32];
            let kdf = header::Kdf::Argon2 {
                variant,
                version: 0x13,
                memory,
                iterations,
                parallelism,
                salt: salt.to_vec(),
            };
            let theirs = rust_argon2::hash_raw(
                &*composite,
                &salt,
                &rust_argon2::Config {
                    thread_mode: rust_argon2::ThreadMode::Parallel,
                    ad: &[],
                    hash_length: 32,
                    lanes: parallelism,
                    mem_cost: (memory / 1024) as u32,
                    secret: &[],
                    time_cost: iterations as u32,
                    variant: rv,
                    version: rust_argon2::Version::Version13,
                },
            )
            .expect("rust-argon2");
            assert_eq!(
                &transform(&kdf, &composite).expect("derives")[..],
                &theirs[..]
            );
        }
    }
    // ov's own parameters and AES-KDF, end to end through saved files.
    for kdf in [
        crate::new_config().kdf_config,
        KdfConfig::Aes { rounds: 60_000 },
    ] {
        let mut config = crate::new_config();
        config.kdf_config = kdf;
        let bytes = save(&sample(config, 1), DatabaseKey::new().with_password(PW));
        assert_same(&bytes, Some(PW), None);
    }
}

#[test]
fn a_wrong_key_fails_the_header_hmac() {
    let mut config = DatabaseConfig::default();
    config.kdf_config = cheap_argon2(true);
    let bytes = save(&sample(config, 1), DatabaseKey::new().with_password(PW));
    assert!(matches!(
        ours(&bytes, Some("wrong"), None),
        Err(ReadError::WrongKey)
    ));
    let header = header::parse(&bytes).expect("header");
    assert!(matches!(
        open(&bytes, &header, &[0u8; 32]),
        Err(ReadError::WrongKey)
    ));
}

// ---- damaged and hostile files ----

fn cheap_file() -> (Vec<u8>, Key32) {
    let mut config = DatabaseConfig::default();
    config.kdf_config = cheap_argon2(true);
    config.outer_cipher_config = OuterCipherConfig::ChaCha20;
    let bytes = save(&sample(config, 2), DatabaseKey::new().with_password(PW));
    let header = header::parse(&bytes).expect("header");
    let key = transform(&header.kdf, &composite_key(Some(PW), None)).expect("derive");
    (bytes, key)
}

fn read_with(bytes: &[u8], key: &[u8; 32]) -> Result<Tree, ReadError> {
    let header = header::parse(bytes)?;
    open(bytes, &header, key)
}

#[test]
fn every_truncation_and_every_flipped_byte_is_an_error_not_a_panic() {
    let (bytes, key) = cheap_file();
    for n in 0..bytes.len() {
        assert!(read_with(&bytes[..n], &key).is_err(), "truncated at {n}");
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x41;
        // A flip in a comment-free header changes the checksum; anywhere
        // else an HMAC. Either way: refused.
        assert!(read_with(&b, &key).is_err(), "flipped byte {i}");
    }
}

#[test]
fn huge_header_field_lengths_are_refused_without_allocating() {
    let (bytes, key) = cheap_file();
    // The first field's length, then a KDF parameter's, set to 4 GiB - 1.
    let mut b = bytes.clone();
    b[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
    match read_with(&b, &key) {
        Err(ReadError::Corrupt(m)) => assert!(m.contains("truncated"), "{m}"),
        other => panic!("{other:?}"),
    }
    let header = header::parse(&bytes).expect("header");
    let kdf_at = bytes
        .windows(header.kdf_params.len())
        .position(|w| w == header.kdf_params)
        .expect("kdf params in the file");
    let mut b = bytes.clone();
    // After the dictionary's version (2 bytes) and the first type (1): a name length.
    b[kdf_at + 3..kdf_at + 7].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(read_with(&b, &key), Err(ReadError::Corrupt(_))));
}

#[test]
fn an_argon2_memory_beyond_the_cap_is_refused_before_deriving() {
    let mut config = DatabaseConfig::default();
    config.kdf_config = KdfConfig::Argon2id {
        iterations: 1,
        memory: 1024 * 1024,
        parallelism: 1,
        version: rust_argon2::Version::Version13,
    };
    let mut bytes = save(&sample(config, 0), DatabaseKey::new().with_password(PW));
    let header = header::parse(&bytes).expect("header");
    let at = bytes
        .windows(2)
        .position(|w| w == b"M\x08")
        .expect("the M parameter");
    // name "M", then the 8-byte value length, then the value.
    let value = at + 1 + 4;
    assert_eq!(&bytes[value..value + 8], &(1024u64 * 1024).to_le_bytes());
    bytes[value..value + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    match header::parse(&bytes) {
        Err(ReadError::Corrupt(m)) => assert!(m.contains("Argon2 memory"), "{m}"),
        other => panic!("{other:?}"),
    }
    drop(header);
}

/// Re-seal `inner` (inner header + XML, before compression) as the
/// payload of `bytes`, with valid HMACs: what a hostile writer who knows
/// the key could make.
fn reseal(bytes: &[u8], key: &[u8; 32], inner: &[u8]) -> Vec<u8> {
    let header = header::parse(bytes).expect("header");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(inner).expect("gzip");
    let mut payload = gz.finish().expect("gzip");
    let cipher_key: [u8; 32] = Sha256::new()
        .chain_update(header.master_seed)
        .chain_update(key)
        .finalize()
        .into();
    match header.cipher {
        header::Cipher::ChaCha20 => chacha20::ChaCha20::new_from_slices(&cipher_key, &header.iv)
            .expect("key")
            .apply_keystream(&mut payload),
        header::Cipher::Aes256Cbc => {
            payload = cbc::Encryptor::<aes::Aes256>::new_from_slices(&cipher_key, &header.iv)
                .expect("key")
                .encrypt_padded_vec::<Pkcs7>(&payload)
        }
    }
    let hmac_key: [u8; 64] = Sha512::new()
        .chain_update(header.master_seed)
        .chain_update(key)
        .chain_update([1u8])
        .finalize()
        .into();
    let mut out = bytes[..header.end + 64].to_vec();
    for (index, block) in [&payload[..], &[]].into_iter().enumerate() {
        let index = index as u64;
        let block_key: [u8; 64] = Sha512::new()
            .chain_update(index.to_le_bytes())
            .chain_update(hmac_key)
            .finalize()
            .into();
        let mut m =
            <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&block_key).expect("hmac");
        hmac::Mac::update(&mut m, &index.to_le_bytes());
        hmac::Mac::update(&mut m, &(block.len() as u32).to_le_bytes());
        hmac::Mac::update(&mut m, block);
        out.extend_from_slice(&hmac::Mac::finalize(m).into_bytes());
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// An inner header with a ChaCha20 stream and the XML after it.
fn inner(xml: &[u8]) -> Vec<u8> {
    let mut out = vec![1, 4, 0, 0, 0, 3, 0, 0, 0, 2, 64, 0, 0, 0];
    out.extend_from_slice(&[9u8; 64]);
    out.extend_from_slice(&[0, 0, 0, 0, 0]);
    out.extend_from_slice(xml);
    out
}

#[test]
fn the_resealing_helper_makes_files_the_reader_accepts() {
    let (bytes, key) = cheap_file();
    let xml = b"<KeePassFile><Root><Group><Name>r</Name><Group><Name>s</Name><Entry><String><Key>Title</Key><Value>t</Value></String><String><Key>Password</Key><Value>v</Value></String></Entry></Group></Group></Root></KeePassFile>";
    let tree = read_with(&reseal(&bytes, &key, &inner(xml)), &key).expect("reads");
    assert_eq!(
        tree.list(None),
        vec![ov_plugin_api::EntryRef::new("s", "t")]
    );
}

#[test]
fn a_decompression_bomb_stops_at_the_cap() {
    let (bytes, key) = cheap_file();
    let limit = 8 * 1024 * 1024;
    let mut bomb = inner(b"<KeePassFile><Root><Group><Name>");
    bomb.resize(bomb.len() + limit + 1024, b' ');
    let file = reseal(&bytes, &key, &bomb);
    assert!(file.len() < limit / 100, "compressed: {}", file.len());
    let header = header::parse(&file).expect("header");
    match open_limited(&file, &header, &key, limit) {
        Err(ReadError::Corrupt(m)) => assert!(m.contains("decompresses to more than 8 MiB"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deep_xml_and_entities_are_refused() {
    let (bytes, key) = cheap_file();
    let mut deep = b"<KeePassFile><Root><Group>".to_vec();
    for _ in 0..100_000 {
        deep.extend_from_slice(b"<Group>");
    }
    match read_with(&reseal(&bytes, &key, &inner(&deep)), &key) {
        Err(ReadError::Corrupt(m)) => assert!(m.contains("nests deeper"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut deep_other = b"<KeePassFile><Root><Group>".to_vec();
    for _ in 0..100_000 {
        deep_other.extend_from_slice(b"<x>");
    }
    assert!(read_with(&reseal(&bytes, &key, &inner(&deep_other)), &key).is_err());
    let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><KeePassFile><Root><Group><Name>&b;</Name></Group></Root></KeePassFile>";
    assert!(read_with(&reseal(&bytes, &key, &inner(laughs)), &key).is_err());
    for broken in [
        &b"<KeePassFile><Root><Group><Name>x</Group>"[..],
        b"<KeePassFile></KeePassFile>",
        b"\xff\xfe garbage",
    ] {
        assert!(read_with(&reseal(&bytes, &key, &inner(broken)), &key).is_err());
    }
}
