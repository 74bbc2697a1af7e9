//! A connection and its record in a live upgrade's handover, both ways: what the next
//! binary is told of it, and the connection it makes again from that.

use std::os::fd::RawFd;

use super::{Connection, State};
use crate::outbox::Outbox;
use crate::upgrade::handover::{Carried, CarriedState, CarriedSubscription};

impl<S> Connection<S> {
    /// This connection as a live upgrade's record carries it, with its descriptor and
    /// subscription; `None` for one awaiting Redis (answered before the handover).
    pub fn to_carried(&self, fd: RawFd, symbols: Option<CarriedSubscription>) -> Option<Carried> {
        let state = match &self.state {
            State::Reading { buf, input_closed } => CarriedState::Reading {
                buf: buf.clone(),
                input_closed: *input_closed,
            },
            State::Idle => CarriedState::Idle,
            State::Parked(w) => CarriedState::Parked(*w),
            State::Writing { out, then } => CarriedState::Writing {
                bytes: out.unwritten(),
                then: then.clone(),
            },
            State::Lingering => CarriedState::Lingering,
            State::Awaiting { .. } => return None,
        };
        Some(Carried {
            fd,
            protocol: self.protocol,
            serial: self.serial,
            peer: self.peer,
            state,
            symbols,
        })
    }

    /// The connection a record carried (its subscription aside), over its socket, not yet
    /// registered with the poller.
    pub fn from_carried(socket: S, carried: Carried) -> Connection<S> {
        let state = match carried.state {
            CarriedState::Reading { buf, input_closed } => State::Reading { buf, input_closed },
            CarriedState::Idle => State::Idle,
            CarriedState::Parked(w) => State::Parked(w),
            CarriedState::Writing { bytes, then } => State::Writing {
                out: Outbox::one(bytes.into()),
                then,
            },
            CarriedState::Lingering => State::Lingering,
        };
        Connection {
            socket,
            protocol: carried.protocol,
            state,
            serial: carried.serial,
            peer: carried.peer,
            registered_writable: false,
        }
    }
}
