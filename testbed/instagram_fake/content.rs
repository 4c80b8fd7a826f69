//! The bytes of CDN files and the response body that streams them. A video
//! is generated on the fly from its id and size, so a 1 GiB video costs no
//! more memory than one 64 KiB chunk per response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};

use crate::png::fnv1a;

/// Size of each chunk a streamed body yields.
const CHUNK_BYTES: u64 = 64 * 1024;

/// Length of the `ftyp` box that starts every video.
const FTYP_BYTES: u64 = 32;

/// Smallest video size: the `ftyp` box plus an 8-byte `mdat` box header.
pub const MIN_VIDEO_BYTES: u64 = FTYP_BYTES + 8;

/// The bytes of one CDN file.
#[derive(Debug, Clone)]
pub enum Content {
    /// A small file held whole, such as a PNG image.
    Whole(Bytes),
    /// A video generated on demand.
    Video(VideoFile),
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Self::Whole(bytes) => bytes.len() as u64,
            Self::Video(video) => video.size,
        }
    }

    /// Fills `buffer` with the bytes starting at `offset`. The range must
    /// lie within the file.
    fn read(&self, offset: u64, buffer: &mut [u8]) {
        match self {
            Self::Whole(bytes) => {
                let start = usize::try_from(offset).expect("offset within a small file");
                buffer.copy_from_slice(&bytes[start..start + buffer.len()]);
            }
            Self::Video(video) => video.read(offset, buffer),
        }
    }
}

/// An MP4-looking file: an `ftyp` box, then one `mdat` box whose payload is
/// pseudo-random filler derived from the media id. It has no `moov` box, so
/// players cannot decode it, but its type sniffs as MP4.
#[derive(Debug, Clone)]
pub struct VideoFile {
    seed: u64,
    size: u64,
    header: Vec<u8>,
}

impl VideoFile {
    /// Describes the video of `id` with a total size of `size` bytes, at
    /// least `MIN_VIDEO_BYTES`.
    pub fn new(id: &str, size: u64) -> Self {
        assert!(size >= MIN_VIDEO_BYTES, "video smaller than its headers");
        let mut header = Vec::with_capacity(48);
        header.extend_from_slice(&(FTYP_BYTES as u32).to_be_bytes());
        header.extend_from_slice(b"ftypisom");
        header.extend_from_slice(&0x200u32.to_be_bytes());
        header.extend_from_slice(b"isomiso2avc1mp41");

        let mdat_bytes = size - FTYP_BYTES;
        match u32::try_from(mdat_bytes) {
            Ok(small) => {
                header.extend_from_slice(&small.to_be_bytes());
                header.extend_from_slice(b"mdat");
            }
            Err(_) => {
                // A box of 4 GiB or more stores size 1 and a 64-bit size
                // after its type (ISO/IEC 14496-12, section 4.2).
                header.extend_from_slice(&1u32.to_be_bytes());
                header.extend_from_slice(b"mdat");
                header.extend_from_slice(&mdat_bytes.to_be_bytes());
            }
        }
        Self {
            seed: fnv1a(id.as_bytes()),
            size,
            header,
        }
    }

    fn read(&self, offset: u64, buffer: &mut [u8]) {
        let mut position = offset;
        let mut filled = 0;
        while filled < buffer.len() {
            let header_byte = usize::try_from(position)
                .ok()
                .and_then(|index| self.header.get(index));
            if let Some(&byte) = header_byte {
                buffer[filled] = byte;
                filled += 1;
                position += 1;
                continue;
            }
            // The filler is made of 8-byte words, so copy the rest of the
            // word that contains `position`.
            let word = filler_word(self.seed, position / 8).to_le_bytes();
            let within = (position % 8) as usize;
            let take = (8 - within).min(buffer.len() - filled);
            buffer[filled..filled + take].copy_from_slice(&word[within..within + take]);
            filled += take;
            position += take as u64;
        }
    }
}

/// Returns filler word `index` of a video: a SplitMix64 output keyed by the
/// video's seed.
fn filler_word(seed: u64, index: u64) -> u64 {
    let mut word = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    word = (word ^ (word >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    word = (word ^ (word >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    word ^ (word >> 31)
}

/// A response body that yields `content[start..end]` in chunks of
/// `CHUNK_BYTES`, generating each chunk when hyper polls for it.
pub struct ContentBody {
    content: Content,
    position: u64,
    end: u64,
}

impl ContentBody {
    /// Streams the bytes `start..end` of `content`.
    pub fn new(content: Content, start: u64, end: u64) -> Self {
        assert!(
            start <= end && end <= content.len(),
            "range within the file"
        );
        Self {
            content,
            position: start,
            end,
        }
    }
}

impl Body for ContentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let body = self.get_mut();
        if body.position >= body.end {
            return Poll::Ready(None);
        }
        let length = CHUNK_BYTES.min(body.end - body.position);
        let mut chunk = vec![0; usize::try_from(length).expect("chunk fits in memory")];
        body.content.read(body.position, &mut chunk);
        body.position += length;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.position >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end - self.position)
    }
}
