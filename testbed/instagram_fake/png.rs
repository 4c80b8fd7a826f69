//! A minimal PNG encoder for the CDN images: 8-bit RGB, no filtering, and
//! zlib data made of stored (uncompressed) deflate blocks, so it needs no
//! compression library. The files are valid PNG (ISO/IEC 15948) that image
//! decoders and upload validators accept.

use std::sync::OnceLock;

/// Side of the square images the CDN serves, in pixels.
pub const IMAGE_SIDE: u32 = 64;

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Largest payload of one stored deflate block (RFC 1951, section 3.2.4).
const MAX_STORED_BLOCK: usize = 65_535;

/// Returns the image served for a media id: a background colour derived
/// from the id with a diagonal band in the inverse colour. The id's bytes
/// are written into the channels of the first row, so no two ids share a
/// file.
pub fn media_image(id: &str) -> Vec<u8> {
    let side = IMAGE_SIDE as usize;
    let hash = fnv1a(id.as_bytes());
    let background = [(hash >> 16) as u8, (hash >> 8) as u8, hash as u8];
    let band = background.map(|channel| !channel);

    let mut pixels = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let on_band = x.abs_diff(y) < 6;
            pixels.extend_from_slice(if on_band { &band } else { &background });
        }
    }
    let first_row = &mut pixels[..side * 3];
    for (channel, byte) in first_row.iter_mut().zip(id.bytes()) {
        *channel = byte;
    }
    encode_rgb(IMAGE_SIDE, IMAGE_SIDE, &pixels)
}

/// Encodes `pixels`, rows of RGB triples from the top left, as a PNG file.
pub fn encode_rgb(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
    let row_len = width as usize * 3;
    assert_eq!(pixels.len(), row_len * height as usize, "pixel buffer size");

    // Every scanline starts with its filter type, 0 (None).
    let mut scanlines = Vec::with_capacity(pixels.len() + height as usize);
    for row in pixels.chunks(row_len) {
        scanlines.push(0);
        scanlines.extend_from_slice(row);
    }

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no
    // interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut file = SIGNATURE.to_vec();
    write_chunk(&mut file, b"IHDR", &header);
    write_chunk(&mut file, b"IDAT", &zlib_stored(&scanlines));
    write_chunk(&mut file, b"IEND", &[]);
    file
}

/// Appends one chunk: length, type, data and the CRC-32 of type and data.
fn write_chunk(file: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).expect("chunk fits in 2^31 bytes");
    file.extend_from_slice(&length.to_be_bytes());
    let start = file.len();
    file.extend_from_slice(kind);
    file.extend_from_slice(data);
    let crc = crc32(&file[start..]);
    file.extend_from_slice(&crc.to_be_bytes());
}

/// Wraps `data` in a zlib stream (RFC 1950) of stored deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let blocks = data.len().div_ceil(MAX_STORED_BLOCK).max(1);
    let mut stream = Vec::with_capacity(data.len() + blocks * 5 + 6);
    // CMF 0x78: deflate with a 32 KiB window. FLG 0x01 makes CMF*256+FLG a
    // multiple of 31 and selects no preset dictionary.
    stream.extend_from_slice(&[0x78, 0x01]);

    let mut chunks = data.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        // An empty input still needs one final, empty block.
        stream.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = chunks.next() {
        let is_final = chunks.peek().is_none();
        // Block header bits: BFINAL, then BTYPE 00 (stored), padded to a
        // byte boundary.
        stream.push(u8::from(is_final));
        let length = u16::try_from(block.len()).expect("block fits in 65535 bytes");
        stream.extend_from_slice(&length.to_le_bytes());
        stream.extend_from_slice(&(!length).to_le_bytes());
        stream.extend_from_slice(block);
    }
    stream.extend_from_slice(&adler32(data).to_be_bytes());
    stream
}

/// CRC-32 with the reflected polynomial 0xEDB88320, as PNG and zlib define
/// it.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (index, entry) in table.iter_mut().enumerate() {
            let mut value = index as u32;
            for _ in 0..8 {
                value = if value & 1 == 1 {
                    0xEDB8_8320 ^ (value >> 1)
                } else {
                    value >> 1
                };
            }
            *entry = value;
        }
        table
    });
    let crc = data.iter().fold(0xFFFF_FFFFu32, |crc, &byte| {
        table[usize::from((crc as u8) ^ byte)] ^ (crc >> 8)
    });
    !crc
}

/// Adler-32 checksum of the uncompressed data, which ends a zlib stream.
fn adler32(data: &[u8]) -> u32 {
    const MODULUS: u32 = 65_521;
    let (mut low, mut high) = (1u32, 0u32);
    for &byte in data {
        low = (low + u32::from(byte)) % MODULUS;
        high = (high + low) % MODULUS;
    }
    (high << 16) | low
}

/// 64-bit FNV-1a hash, used to derive colours and file contents from ids.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
