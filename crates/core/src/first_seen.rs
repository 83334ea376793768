//! [`FirstSeen`]: the first `CAP` distinct keys met, each with a value, and a
//! count of what came for keys past them. Bookkeeping of what a client did
//! (the names it asked, the rules that dropped it) whose memory stays bounded
//! whatever the client does: a million distinct names keep `CAP` entries and
//! one counter.
//!
//! A lookup is a linear scan (the caps are small: tens of entries), done per
//! query or per connection, never per packet; a key is built (and may
//! allocate) only when it is new and there is room for it.

/// The first `CAP` distinct keys, in the order first seen, each with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSeen<K, V, const CAP: usize> {
    entries: Vec<(K, V)>,
    /// Hits for keys that found no room.
    past_cap: u64,
}

impl<K, V, const CAP: usize> Default for FirstSeen<K, V, CAP> {
    fn default() -> Self {
        FirstSeen { entries: Vec::new(), past_cap: 0 }
    }
}

impl<K, V, const CAP: usize> FirstSeen<K, V, CAP> {
    /// How many distinct keys are kept at most.
    pub const CAP: usize = CAP;

    /// The value of the key that `is` matches; a new key is made by `make`
    /// if there is room. `None` when the key is new and `CAP` are kept: the
    /// hit is counted in [`FirstSeen::past_cap`] instead.
    pub fn entry(&mut self, is: impl Fn(&K) -> bool, make: impl FnOnce() -> (K, V)) -> Option<&mut V> {
        match self.entries.iter().position(|(k, _)| is(k)) {
            Some(i) => Some(&mut self.entries[i].1),
            None if self.entries.len() < CAP => {
                self.entries.push(make());
                self.entries.last_mut().map(|(_, v)| v)
            }
            None => {
                self.past_cap += 1;
                None
            }
        }
    }

    /// The keys kept and their values, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }

    /// How many distinct keys are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hits for keys past the first `CAP` (each hit, not each key: telling
    /// keys apart would need the memory the cap saves).
    pub fn past_cap(&self) -> u64 {
        self.past_cap
    }

    /// Adds `other`'s (another queue's): its keys in its order, a key both
    /// have merged with `merge`; a key that finds no room adds its
    /// `weight` (the hits it stands for) to [`FirstSeen::past_cap`].
    pub fn add(&mut self, other: &Self, merge: impl Fn(&mut V, &V), weight: impl Fn(&V) -> u64)
    where
        K: PartialEq + Clone,
        V: Clone,
    {
        for (k, v) in &other.entries {
            match self.entries.iter().position(|(mine, _)| mine == k) {
                Some(i) => merge(&mut self.entries[i].1, v),
                None if self.entries.len() < CAP => self.entries.push((k.clone(), v.clone())),
                None => self.past_cap += weight(v),
            }
        }
        self.past_cap += other.past_cap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Tally = FirstSeen<String, u64, 3>;

    fn hit(t: &mut Tally, key: &str) -> bool {
        match t.entry(|k| k == key, || (key.to_string(), 0)) {
            Some(n) => {
                *n += 1;
                true
            }
            None => false,
        }
    }

    #[test]
    fn keeps_the_first_cap_keys_in_order_and_counts_the_rest() {
        let mut t = Tally::default();
        for key in ["b", "a", "b", "c", "d", "a", "e", "d"] {
            hit(&mut t, key);
        }
        let kept: Vec<(&str, u64)> = t.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(kept, [("b", 2), ("a", 2), ("c", 1)]);
        assert_eq!(t.past_cap(), 3, "d, e, d: each hit past the cap");
        assert_eq!(t.len(), Tally::CAP);
    }

    #[test]
    fn a_million_distinct_keys_keep_cap_entries() {
        let mut t = Tally::default();
        let mut made = 0;
        for i in 0..1_000_000u32 {
            let new_key = || {
                made += 1;
                (i.to_string(), 0)
            };
            if let Some(n) = t.entry(|k| k.parse::<u32>() == Ok(i), new_key) {
                *n += 1;
            }
        }
        assert_eq!((t.len(), made, t.past_cap()), (3, 3, 999_997), "no key built past the cap");
    }

    #[test]
    fn adding_another_merges_shared_keys_and_counts_what_finds_no_room() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for key in ["x", "y"] {
            hit(&mut a, key);
        }
        for key in ["y", "z", "w", "w", "v", "u"] {
            hit(&mut b, key);
        }
        assert_eq!(b.past_cap(), 2, "v and u");
        a.add(&b, |mine, theirs| *mine += theirs, |n| *n);
        let kept: Vec<(&str, u64)> = a.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(kept, [("x", 1), ("y", 2), ("z", 1)]);
        assert_eq!(a.past_cap(), 2 + 2, "w's two hits found no room, and b's own two");
        let total: u64 = a.iter().map(|(_, n)| n).sum::<u64>() + a.past_cap();
        assert_eq!(total, 8, "every hit of both is somewhere");
    }
}
