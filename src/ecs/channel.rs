//! `GET /agent/v1/channel?cluster=C&containerInstance=ID&protocolVersion=1`:
//! the WebSocket of a `wharf agent` (README "Agents"; messages in
//! `runner::protocol`). The upgrade request is SigV4-signed for `ecs` with
//! an access key whose user may manage container instances (the `Operator`
//! need, as RegisterContainerInstance). This module moves frames between
//! the socket and the runner's session; the runner decides everything else.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};

use super::{EcsError, EcsState};
use crate::auth::EcsNeed;
use crate::aws::{self, AwsSettings};
use crate::http::Query;
use crate::metrics::metrics;
use crate::runner::Attached;
use crate::runner::protocol::{
    AgentFrame, HEARTBEAT, MAX_FRAME_BYTES, PROTOCOL_VERSION, ServerFrame,
};

/// How many heartbeats an agent may let pass in silence.
const SILENT_HEARTBEATS: u32 = 3;
/// A frame the agent does not take within this long ends the channel.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Channels are closed after this long, so the agent signs in again (a
/// revoked key or rule takes effect) and reconnects at once.
const MAX_CHANNEL_LIFE: Duration = Duration::from_secs(3600);

/// Sends `message`, giving up after [`WRITE_TIMEOUT`]: false when the channel is done.
async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

pub async fn channel(
    State(state): State<EcsState>,
    State(settings): State<AwsSettings>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let principal = match aws::authenticate_bodiless(&state.auth, &settings, "ecs", &parts).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal.into_response(),
    };
    if !state.auth.admits_ecs(&principal, EcsNeed::Operator) {
        metrics().auth_failure("forbidden");
        return EcsError::AccessDenied(format!(
            "User: {} is not authorized to connect an agent: that needs every action on every repository (`*`)",
            principal.subject()
        ))
        .into_response();
    }
    let signature = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(runner) = &state.runner else {
        return EcsError::Client(
            "the task runner is turned off on this server (runner.enabled = false)".into(),
        )
        .into_response();
    };
    let query = Query::from_uri(&parts.uri);
    if query.get("protocolVersion") != Some(&PROTOCOL_VERSION.to_string()) {
        return EcsError::Client(format!(
            "this server speaks agent protocol version {PROTOCOL_VERSION}: use a wharf agent of the same release"
        ))
        .into_response();
    }
    let Some(instance) = query.get("containerInstance") else {
        return EcsError::InvalidParameter("containerInstance is required".into()).into_response();
    };
    // The channel needs the operator, who may register any target anyway.
    let advertised = match query.get("address").map(advertised_address) {
        None => None,
        Some(Ok(address)) => Some(address),
        Some(Err(message)) => return EcsError::InvalidParameter(message).into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Open mode has no signature to remember.
    if !signature.is_empty() && !runner.first_channel_use(&signature) {
        return aws::Refusal::Signature(crate::aws::sigv4::SigError::Invalid(
            "This signature has opened a channel before: sign every connection anew.".into(),
        ))
        .into_response();
    }
    let crate::http::PeerAddr(peer) =
        match crate::http::PeerAddr::from_request_parts(&mut parts, &()).await {
            Ok(peer) => peer,
            Err(never) => match never {},
        };
    let attached = match runner
        .attach_agent(query.get("cluster"), instance, advertised.unwrap_or(peer))
        .await
    {
        Ok(attached) => attached,
        Err(e) => return EcsError::from(e).into_response(),
    };
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| pump(socket, attached))
}

/// An agent's `--advertise-address`: a unicast IP a load balancer can send to.
fn advertised_address(text: &str) -> Result<std::net::IpAddr, String> {
    let address: std::net::IpAddr = text
        .parse()
        .map_err(|_| format!("address {text:?} is not an IP address"))?;
    if address.is_unspecified() || address.is_multicast() {
        return Err(format!("address {address} cannot receive traffic"));
    }
    // Not the server's own host nor link-local services (cloud metadata):
    // an agent on the server's host needs no advertised address.
    let link_local = match address {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if address.is_loopback() || link_local {
        return Err(format!(
            "address {address} is loopback or link-local: advertise an address other hosts reach"
        ));
    }
    Ok(address)
}

fn text(frame: &ServerFrame) -> Option<Message> {
    serde_json::to_string(frame)
        .ok()
        .map(|t| Message::Text(t.into()))
}

/// Moves frames until either side ends the session or the agent falls
/// silent; dropping `attached` then marks the agent away.
async fn pump(mut socket: WebSocket, mut attached: Attached) {
    let Some(hello) = text(&attached.hello) else {
        return;
    };
    if !send(&mut socket, hello).await {
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut heard = Instant::now();
    let life = tokio::time::sleep(MAX_CHANNEL_LIFE);
    tokio::pin!(life);
    loop {
        tokio::select! {
            () = attached.session.closed.cancelled() => {
                send(&mut socket, Message::Close(None)).await;
                break;
            }
            () = &mut life => {
                send(&mut socket, Message::Close(None)).await;
                break;
            }
            frame = attached.frames.recv() => {
                let Some(message) = frame.as_ref().and_then(text) else { break };
                if !send(&mut socket, message).await {
                    break;
                }
            }
            _ = heartbeat.tick() => {
                if heard.elapsed() > HEARTBEAT * SILENT_HEARTBEATS {
                    tracing::warn!(instance = %attached.session.instance, "agent: silent; closing its channel");
                    break;
                }
                let beat = ServerFrame::Heartbeat { sent_at_ms: crate::registry::now_ms() };
                let Some(message) = text(&beat) else { break };
                if !send(&mut socket, message).await {
                    break;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(t))) => {
                    heard = Instant::now();
                    match serde_json::from_str::<AgentFrame>(&t) {
                        Ok(frame) => attached.session.receive(frame),
                        Err(e) => {
                            tracing::warn!(instance = %attached.session.instance, error = %e, "agent: unreadable frame; closing its channel");
                            break;
                        }
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => heard = Instant::now(),
                Some(Ok(Message::Binary(_) | Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::advertised_address;

    #[test]
    fn an_advertised_address_is_a_unicast_ip() {
        assert_eq!(
            advertised_address("192.0.2.7").unwrap().to_string(),
            "192.0.2.7"
        );
        assert!(advertised_address("2001:db8::1").is_ok());
        for bad in [
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "host.example",
            "1.2.3.4:80",
            "",
        ] {
            assert!(advertised_address(bad).is_err(), "{bad}");
        }
    }
}
