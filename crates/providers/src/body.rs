//! Reading a whole HTTP body, for the gateway's own requests and the upstream's answers alike.

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// Reads `body` to its end into one `Bytes`; trailers are ignored.
///
/// Why not `BodyExt::collect`: a JSON request or answer with a `content-length` arrives as one
/// frame, and `collect` first files every frame in a list (a `VecDeque` allocated per body, two
/// bodies per proxied call) before handing the frame back. Here a single frame is returned as
/// is, and only a body in several frames is copied, once, into one buffer.
pub async fn collect<B>(body: B) -> Result<Bytes, B::Error>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        if let Some(joined) = &mut joined {
            joined.extend_from_slice(&data);
        } else if whole.is_empty() {
            whole = data;
        } else if !data.is_empty() {
            let mut buffer = BytesMut::with_capacity(whole.len() + data.len());
            buffer.extend_from_slice(&whole);
            buffer.extend_from_slice(&data);
            joined = Some(buffer);
        }
    }
    Ok(joined.map_or(whole, BytesMut::freeze))
}

#[cfg(test)]
mod tests {
    use super::collect;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    use std::convert::Infallible;

    fn frames(parts: &[&'static str]) -> impl hyper::body::Body<Data = Bytes, Error = Infallible> {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .chain(std::iter::once(Ok(Frame::trailers(Default::default()))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn one_frame_comes_back_as_the_same_bytes() {
        let data = Bytes::from_static(b"{\"model\":\"m\"}");
        let read = collect(Full::new(data.clone())).await.unwrap();
        assert_eq!(read, data);
        assert_eq!(read.as_ptr(), data.as_ptr(), "a single frame is not copied");
    }

    #[tokio::test]
    async fn frames_are_joined_in_order_and_trailers_ignored() {
        for parts in [
            &["{\"a\":", "", "1,\"b\":", "2}"][..],
            &["", "{}"],
            &["{", "}"],
            &[],
            &[""],
        ] {
            let expected: String = parts.concat();
            let read = collect(frames(parts)).await.unwrap();
            assert_eq!(read, expected.as_bytes(), "{parts:?}");
            let reference = frames(parts).collect().await.unwrap().to_bytes();
            assert_eq!(read, reference, "same as BodyExt::collect for {parts:?}");
        }
    }

    #[tokio::test]
    async fn an_error_mid_body_is_returned() {
        let frames: Vec<Result<Frame<Bytes>, &str>> =
            vec![Ok(Frame::data(Bytes::from_static(b"{"))), Err("reset")];
        let body = StreamBody::new(futures::stream::iter(frames));
        assert_eq!(collect(body).await.unwrap_err(), "reset");
    }
}
