//! Length-prefixed frames on a stream: `u32` length (little endian), then
//! the bytes. Reading refuses a frame longer than the caller's limit before
//! allocating for it, and allocates as the bytes arrive, not as announced:
//! a peer that announces 64 MiB and sends ten bytes costs ten bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The sending half of a stream between devices.
pub type SendHalf = iroh::endpoint::SendStream;
/// The receiving half of a stream between devices.
pub type RecvHalf = iroh::endpoint::RecvStream;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream failed or ended early.
    #[error("the connection broke: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced a frame longer than we accept.
    #[error("the peer sent a frame of {len} bytes, more than the {max} accepted")]
    TooLong {
        /// Announced length.
        len: usize,
        /// Our limit.
        max: usize,
    },
}

/// The most a frame's buffer holds before its bytes arrive.
const FIRST_ALLOCATION: usize = 64 * 1024;

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLong {
        len: bytes.len(),
        max: u32::MAX as usize,
    })?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(bytes).await?;
    Ok(())
}

/// Reads one frame of at most `max` bytes; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    let mut buf = Vec::with_capacity(len.min(FIRST_ALLOCATION));
    r.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_long_ones_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r, 10).await.unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 10).await.unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 10).await.unwrap().is_none());
        let mut buf = Vec::new();
        write_frame(&mut buf, &[0; 100]).await.unwrap();
        assert!(matches!(
            read_frame(&mut buf.as_slice(), 10).await,
            Err(FrameError::TooLong { len: 100, max: 10 })
        ));
        // A stream cut inside a frame is an error, not a clean end.
        assert!(read_frame(&mut &buf[..50], 1000).await.is_err());
        // A length of a gigabyte before ten bytes: an error, and only the
        // bytes that came were ever held.
        let mut lying = (1u32 << 30).to_le_bytes().to_vec();
        lying.extend_from_slice(&[7; 10]);
        assert!(read_frame(&mut lying.as_slice(), usize::MAX).await.is_err());
    }
}
