//! Room for a request's worth of items, guessed from the last request the same thread handled:
//! a buffer sized once up front is not copied each time it grows, and holds little unused room.

use std::cell::Cell;
use std::thread::LocalKey;

/// A thread's guess of how much room one item of a request takes (bytes of an encoded row,
/// attributes of a span), learnt from the last request.
pub(crate) struct SizeGuess {
    /// The thread's last figure per item.
    last: &'static LocalKey<Cell<usize>>,
    /// The most room per item ever guessed: after a request of a few huge items, one of many
    /// small items is not given room for as many huge ones (its buffer grows instead).
    max: usize,
}

impl SizeGuess {
    /// A guess kept in `last`, never above `max` per item.
    pub(crate) const fn new(last: &'static LocalKey<Cell<usize>>, max: usize) -> Self {
        Self { last, max }
    }

    /// Room for `items`: an eighth above the last figure per item.
    pub(crate) fn room(&self, items: usize) -> usize {
        let room = items.saturating_mul(self.last.get().min(self.max));
        room.saturating_add(room / 8)
    }

    /// Learns from a request whose `items` took `used` (rounded up per item).
    pub(crate) fn learn(&self, used: usize, items: usize) {
        if items > 0 {
            self.last.set(used.div_ceil(items));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static LAST: Cell<usize> = const { Cell::new(10) };
    }

    #[test]
    fn room_follows_the_last_request_and_is_capped() {
        let guess = SizeGuess::new(&LAST, 100);
        assert_eq!(
            guess.room(8),
            80 + 10,
            "an eighth above the starting figure"
        );
        guess.learn(2_750, 500);
        assert_eq!(guess.room(500), 3_000 + 375, "5.5 per item is rounded up");
        guess.learn(1_000_000, 10);
        assert_eq!(guess.room(10), 1_000 + 125, "never above the cap per item");
        guess.learn(5, 0);
        assert_eq!(
            guess.room(10),
            1_000 + 125,
            "an empty request teaches nothing"
        );
    }
}
