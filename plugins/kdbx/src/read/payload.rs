//! From the header's end to the XML: the header checks, the HMAC block
//! stream, the payload cipher, gzip, and the inner header.

use std::io::Read;

use cipher::{BlockModeDecrypt, KeyIvInit, StreamCipher, block_padding::Pkcs7};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use super::header::{Cipher, Header, field, le_u32, take};
use super::{ReadError, corrupt};

/// The most a payload may decompress to. A real database with attachments
/// stays far below; a decompression bomb stops here.
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The key of block `index`'s HMAC (`u64::MAX` is the header's).
fn block_key(index: u64, hmac_key: &[u8; 64]) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(
        &Sha512::new()
            .chain_update(index.to_le_bytes())
            .chain_update(hmac_key)
            .finalize(),
    );
    out
}

fn mac(key: &[u8; 64]) -> HmacSha256 {
    // HMAC takes a key of any length; a 64-byte one cannot be refused.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The payload's keys from the transformed key and the master seed.
pub struct Keys {
    cipher: Zeroizing<[u8; 32]>,
    hmac: Zeroizing<[u8; 64]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

impl Keys {
    pub fn new(header: &Header, transformed: &[u8; 32]) -> Keys {
        let mut cipher = Zeroizing::new([0u8; 32]);
        cipher.copy_from_slice(
            &Sha256::new()
                .chain_update(header.master_seed)
                .chain_update(transformed)
                .finalize(),
        );
        let mut hmac = Zeroizing::new([0u8; 64]);
        hmac.copy_from_slice(
            &Sha512::new()
                .chain_update(header.master_seed)
                .chain_update(transformed)
                .chain_update([1u8])
                .finalize(),
        );
        Keys { cipher, hmac }
    }
}

/// Check the header's SHA-256 (damage) and HMAC (the key): a wrong key
/// fails here, before anything is decrypted.
pub fn check_header(data: &[u8], header: &Header, keys: &Keys) -> Result<(), ReadError> {
    let head = &data[..header.end.min(data.len())];
    let sha = take(data, header.end, 32, "the header checksum")?;
    if Sha256::digest(head).as_slice() != sha {
        return Err(corrupt(
            "the header checksum does not match (the file is damaged)",
        ));
    }
    let tag = take(data, header.end + 32, 32, "the header HMAC")?;
    let mut m = mac(&block_key(u64::MAX, &keys.hmac));
    m.update(head);
    m.verify_slice(tag).map_err(|_| ReadError::WrongKey)
}

/// The encrypted payload, each block's HMAC checked.
fn block_stream(data: &[u8], hmac_key: &[u8; 64]) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut out = Zeroizing::new(Vec::new());
    let mut pos = 0;
    for index in 0u64.. {
        let tag = take(data, pos, 32, "a payload block")?;
        let size_bytes = take(data, pos + 32, 4, "a payload block")?;
        let size = le_u32(size_bytes) as usize;
        let block = take(data, pos + 36, size, "a payload block")?;
        let mut m = mac(&block_key(index, hmac_key));
        m.update(&index.to_le_bytes());
        m.update(size_bytes);
        m.update(block);
        m.verify_slice(tag).map_err(|_| {
            corrupt(format!(
                "payload block {index} fails its HMAC (the file is damaged)"
            ))
        })?;
        if size == 0 {
            break;
        }
        out.extend_from_slice(block);
        pos += 36 + size;
    }
    Ok(out)
}

/// Decrypt and decompress the payload: the inner header and the XML.
pub fn decrypt(
    data: &[u8],
    header: &Header,
    keys: &Keys,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let stream = data
        .get(header.end + 64..)
        .ok_or_else(|| corrupt("truncated: no payload after the header"))?;
    let mut buf = block_stream(stream, &keys.hmac)?;
    let plain_len = match header.cipher {
        Cipher::ChaCha20 => {
            let mut c = chacha20::ChaCha20::new_from_slices(&*keys.cipher, &header.iv)
                .map_err(|_| corrupt("a ChaCha20 IV of the wrong length"))?;
            c.apply_keystream(&mut buf);
            buf.len()
        }
        Cipher::Aes256Cbc => {
            cbc::Decryptor::<aes::Aes256>::new_from_slices(&*keys.cipher, &header.iv)
                .map_err(|_| corrupt("an AES IV of the wrong length"))?
                .decrypt_padded::<Pkcs7>(&mut buf)
                .map_err(|_| corrupt("the payload's padding is wrong (the file is damaged)"))?
                .len()
        }
    };
    buf.truncate(plain_len);
    if !header.compressed {
        if buf.len() > limit {
            return Err(too_large(limit));
        }
        return Ok(buf);
    }
    let mut out = Zeroizing::new(Vec::new());
    flate2::read::GzDecoder::new(&buf[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("the payload does not decompress: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: usize) -> ReadError {
    corrupt(format!(
        "the payload decompresses to more than {} MiB; ov reads no database that large",
        limit / (1024 * 1024)
    ))
}

/// The inner stream cipher that hides protected values.
pub enum InnerStream {
    /// Protected values stored as they are (base64 only).
    Plain,
    ChaCha20(Box<chacha20::ChaCha20>),
    Salsa20(Box<salsa20::Salsa20>),
}

impl InnerStream {
    pub fn apply(&mut self, buf: &mut [u8]) {
        match self {
            InnerStream::Plain => {}
            InnerStream::ChaCha20(c) => c.apply_keystream(buf),
            InnerStream::Salsa20(c) => c.apply_keystream(buf),
        }
    }
}

impl std::fmt::Debug for InnerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InnerStream")
    }
}

/// Parse the inner header: the protected-value stream, and where the XML starts.
pub fn inner_header(payload: &[u8]) -> Result<(InnerStream, usize), ReadError> {
    let (mut id, mut key) = (None, None);
    let mut pos = 0;
    loop {
        let (kind, value, next) = field(payload, pos, "an inner header field")?;
        pos = next;
        match kind {
            0 => break,
            1 if value.len() == 4 => id = Some(le_u32(value)),
            2 => key = Some(Zeroizing::new(value.to_vec())),
            // Attachments: ov reads none.
            3 => {}
            _ => return Err(corrupt("an unknown inner header field")),
        }
    }
    let key = key.unwrap_or_default();
    let stream = match id {
        Some(3) => {
            let h = Zeroizing::new(<[u8; 64]>::from(Sha512::digest(&*key)));
            InnerStream::ChaCha20(Box::new(
                chacha20::ChaCha20::new_from_slices(&h[..32], &h[32..44])
                    .map_err(|_| corrupt("inner ChaCha20 key"))?,
            ))
        }
        Some(2) => {
            let h = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(&*key)));
            const IV: [u8; 8] = [0xE8, 0x30, 0x09, 0x4B, 0x97, 0x20, 0x5D, 0x2A];
            InnerStream::Salsa20(Box::new(
                salsa20::Salsa20::new_from_slices(&*h, &IV)
                    .map_err(|_| corrupt("inner Salsa20 key"))?,
            ))
        }
        Some(0) => InnerStream::Plain,
        _ => return Err(corrupt("an unknown inner stream cipher")),
    };
    Ok((stream, pos))
}
