//! The service's byte budget (`limits.max_in_flight_bytes`): what one request holds of it,
//! grown as its body is read and decompressed, given back when the request ends.

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Semaphore;

/// Bytes of the budget held by one request; given back (and taken off the gauge) on drop.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    slots: &'a Semaphore,
    gauge: &'a Gauge,
    held: usize,
}

impl<'a> Reservation<'a> {
    /// A reservation holding nothing yet of `slots` (one permit per byte), shown in `gauge`.
    pub(crate) fn new(slots: &'a Semaphore, gauge: &'a Gauge) -> Self {
        Reservation { slots, gauge, held: 0 }
    }

    /// Takes `bytes` more of the budget at once, or nothing (`false`) when it has no room.
    pub(crate) fn grow(&mut self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else { return false };
        match self.slots.try_acquire_many(n) {
            Ok(permit) => {
                permit.forget();
                self.held += bytes;
                self.gauge.inc_by(bytes as i64);
                true
            }
            Err(_) => false,
        }
    }

    /// Grows the reservation to at least `bytes` in all; `false` when the budget has no room.
    pub(crate) fn hold_at_least(&mut self, bytes: usize) -> bool {
        bytes <= self.held || self.grow(bytes - self.held)
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.slots.add_permits(self.held);
        self.gauge.dec_by(self.held as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_grows_within_the_budget_and_gives_everything_back() {
        let slots = Semaphore::new(100);
        let gauge = Gauge::default();
        let mut a = Reservation::new(&slots, &gauge);
        assert!(a.grow(60));
        assert!(a.hold_at_least(50), "already held");
        assert!(a.hold_at_least(70));
        let mut b = Reservation::new(&slots, &gauge);
        assert!(!b.grow(31), "all or nothing");
        assert!(b.grow(30));
        assert_eq!((slots.available_permits(), gauge.get()), (0, 100));
        drop(a);
        assert_eq!((slots.available_permits(), gauge.get()), (70, 30));
        drop(b);
        assert_eq!((slots.available_permits(), gauge.get()), (100, 0));
    }
}
