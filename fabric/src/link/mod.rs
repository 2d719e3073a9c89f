//! Links that carry FC frames between a node and a switch port, or between two switches.
//!
//! A [`Link`] is one end: [`LinkTx`] sends frames to the other end, [`LinkRx`] receives what
//! the other end sent. Every kind of link — an in-process channel ([`pair`]), TCP with the
//! RFC 3643 framing ([`tcp`]), and later FCIP — hands out the same two halves, so the switch
//! and the node stack never know what carries their frames.
//!
//! A link is down when [`LinkRx::recv`] returns `None`: the other end dropped its half, the
//! TCP connection closed, or a framing error ended it. Sends are never blocked: the queue
//! between the halves is unbounded and the exchanges above bound what is in flight (class 3
//! has no buffer-to-buffer credit here).

use tokio::sync::mpsc;

use fc_frames::{FcFrame, FrameError};

pub mod tcp;

/// What arrived on a link.
#[derive(Debug, Clone)]
pub enum Received {
    /// A frame that decoded, CRC checked.
    Frame(FcFrame),
    /// Bytes that arrived framed but did not decode as an FC frame (bad CRC, bad length):
    /// counted by the receiver, never acted on.
    Malformed {
        /// Bytes of the encapsulated frame.
        bytes: usize,
        /// Why it did not decode.
        error: FrameError,
    },
}

/// The link is down: nothing can be sent on it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link down")]
pub struct LinkDown;

/// The sending half of a link. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkTx {
    tx: mpsc::UnboundedSender<Received>,
}

impl LinkTx {
    /// Queues `frame` for the other end.
    pub fn send(&self, frame: FcFrame) -> Result<(), LinkDown> {
        self.tx.send(Received::Frame(frame)).map_err(|_| LinkDown)
    }

    /// Tells the other end that a frame arrived malformed (a transport that checks frames
    /// itself, such as FCIP, hands on what it found so the receiver counts it).
    pub fn send_malformed(&self, bytes: usize, error: FrameError) -> Result<(), LinkDown> {
        self.tx
            .send(Received::Malformed { bytes, error })
            .map_err(|_| LinkDown)
    }

    /// True once the other end (or the transport behind it) is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves when the other end (or the transport behind it) is gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The receiving half of a link.
#[derive(Debug)]
pub struct LinkRx {
    rx: mpsc::UnboundedReceiver<Received>,
}

impl LinkRx {
    /// The next thing that arrived; `None` once the link is down and everything that arrived
    /// before has been taken.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }

    /// Everything that arrived, up to `limit` items, appended to `buf` (waits for at least
    /// one); 0 once the link is down.
    pub async fn recv_many(&mut self, buf: &mut Vec<Received>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// What arrived, without waiting; `None` when nothing is queued (or the link is down).
    pub fn try_recv(&mut self) -> Option<Received> {
        self.rx.try_recv().ok()
    }
}

/// One end of a link.
#[derive(Debug)]
pub struct Link {
    /// Frames to the other end.
    pub tx: LinkTx,
    /// Frames from the other end.
    pub rx: LinkRx,
}

impl Link {
    /// A link end over two raw queues, for transports that pump bytes into frames themselves:
    /// `tx` carries what this end sends, `rx` what it receives.
    pub fn from_channels(
        tx: mpsc::UnboundedSender<Received>,
        rx: mpsc::UnboundedReceiver<Received>,
    ) -> Link {
        Link {
            tx: LinkTx { tx },
            rx: LinkRx { rx },
        }
    }
}

/// An in-process link: two connected ends. Dropping both halves of one end takes the link
/// down for the other.
pub fn pair() -> (Link, Link) {
    let (a_tx, b_rx) = mpsc::unbounded_channel();
    let (b_tx, a_rx) = mpsc::unbounded_channel();
    (
        Link::from_channels(a_tx, a_rx),
        Link::from_channels(b_tx, b_rx),
    )
}
