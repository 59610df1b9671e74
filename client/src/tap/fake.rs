//! An in-memory TAP device for tests: frames the test queues are handed
//! out by `recv_batch`, frames written are recorded. No kernel, no root.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{ready, Future};
use std::io;
use std::net::Ipv4Addr;

use switch_core::offload::VnetHdr;

use super::{FrameBatch, TapIo};

#[derive(Debug, Default)]
pub struct FakeTap {
    pub name: String,
    pub mac: [u8; 6],
    pub ipv4: Option<Ipv4Addr>,
    /// Frames carry a `virtio_net_hdr` (as a TAP opened with offload).
    pub vnet: bool,
    /// Frames the "kernel" will hand out, oldest first.
    incoming: RefCell<VecDeque<Vec<u8>>>,
    /// Frames written to the device, in the device's form, in order.
    written: RefCell<Vec<Vec<u8>>>,
    /// Refuse every write (as a TAP whose queue is full).
    pub refuse_writes: bool,
}

impl FakeTap {
    /// A device named `name`; `vnet`: frames carry a `virtio_net_hdr`.
    pub fn new(name: &str, vnet: bool) -> Self {
        Self {
            name: name.to_owned(),
            mac: [0x02, 0, 0, 0, 0, 1],
            vnet,
            ..Self::default()
        }
    }

    /// Queues a frame (in the device's form) for the next `recv_batch`.
    pub fn push_incoming(&self, frame: &[u8]) {
        self.incoming.borrow_mut().push_back(frame.to_vec());
    }

    /// Frames not read yet.
    pub fn pending(&self) -> usize {
        self.incoming.borrow().len()
    }

    /// Takes the frames written so far.
    pub fn take_written(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.written.borrow_mut())
    }

    fn write(&self, frame: Vec<u8>) -> io::Result<()> {
        if self.refuse_writes {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        self.written.borrow_mut().push(frame);
        Ok(())
    }
}

impl TapIo for FakeTap {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn ipv4(&self) -> Option<Ipv4Addr> {
        self.ipv4
    }

    fn vnet(&self) -> bool {
        self.vnet
    }

    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        // Always ready: `recv_batch` then says whether anything waits.
        ready(Ok(()))
    }

    fn recv_batch(&self, batch: &mut FrameBatch, max: usize) -> io::Result<usize> {
        let mut incoming = self.incoming.borrow_mut();
        let mut n = 0;
        while n < max && batch.bytes() < super::BATCH_BYTES {
            let Some(frame) = incoming.pop_front() else {
                break;
            };
            batch.spare(frame.len()).copy_from_slice(&frame);
            batch.commit(frame.len());
            n += 1;
        }
        Ok(n)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.write(frame.to_vec())
    }

    fn send_plain(&self, frame: &[u8]) -> io::Result<()> {
        if !self.vnet {
            return self.send(frame);
        }
        let mut f = VnetHdr::PLAIN.to_bytes().to_vec();
        f.extend_from_slice(frame);
        self.write(f)
    }
}
