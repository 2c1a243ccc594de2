//! A raw ttrpc client, for the shim's own Shutdown (containerd 1.6 never sends
//! `now=true`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct TtrpcRequest {
    #[prost(string, tag = "1")]
    service: String,
    #[prost(string, tag = "2")]
    method: String,
    #[prost(bytes = "vec", tag = "3")]
    payload: Vec<u8>,
    #[prost(int64, tag = "4")]
    timeout_nano: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TtrpcResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<RpcStatus>,
    #[prost(bytes = "vec", tag = "2")]
    payload: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ShutdownRequestPb {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(bool, tag = "2")]
    now: bool,
}

/// Calls `containerd.task.v2.Task/Shutdown{id, now}` on a shim socket (`unix://...`).
/// Ok((grpc code, message)) when it answered, Err when the connection failed or closed
/// without an answer, or nothing came within `limit`.
pub fn ttrpc_shutdown(
    address: &str,
    id: &str,
    now: bool,
    limit: Duration,
) -> Result<(i32, String), String> {
    let path = address.trim_start_matches("unix://");
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let body = TtrpcRequest {
        service: "containerd.task.v2.Task".into(),
        method: "Shutdown".into(),
        payload: ShutdownRequestPb { id: id.into(), now }.encode_to_vec(),
        timeout_nano: 0,
    }
    .encode_to_vec();
    let mut frame = Vec::with_capacity(10 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes()); // stream id
    frame.push(1); // request
    frame.push(0); // flags
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(|e| format!("write: {e}"))?;
    let mut hdr = [0u8; 10];
    s.read_exact(&mut hdr)
        .map_err(|e| format!("no answer (read header: {e})"))?;
    let len = u32::from_be_bytes(hdr[0..4].try_into().unwrap()) as usize;
    let mut data = vec![0u8; len];
    s.read_exact(&mut data)
        .map_err(|e| format!("read body: {e}"))?;
    if hdr[8] != 2 {
        return Err(format!("unexpected ttrpc message type {}", hdr[8]));
    }
    let r = TtrpcResponse::decode(data.as_slice()).map_err(|e| format!("decode: {e}"))?;
    let st = r.status.unwrap_or_default();
    Ok((st.code, st.message))
}
