//! [`Pool`]: GPU objects kept for reuse under a budget in bytes, oldest dropped first.

/// The most entries a pool keeps, whatever their bytes (tiny entries would otherwise make
/// lookups long).
const MAX_ENTRIES: usize = 256;

/// Values kept for reuse by key, within `budget` bytes: a value larger than the budget is not
/// kept, and keeping one past the budget drops the oldest first.
pub(crate) struct Pool<K, V> {
    budget: u64,
    /// Oldest first: (key, value, bytes).
    entries: Vec<(K, V, u64)>,
}

impl<K: PartialEq, V> Pool<K, V> {
    /// An empty pool of `budget` bytes.
    pub(crate) fn new(budget: u64) -> Self {
        Pool {
            budget,
            entries: Vec::new(),
        }
    }

    /// Takes out the newest value kept under `key` for which `fits` holds.
    pub(crate) fn take(&mut self, key: &K, fits: impl Fn(&V) -> bool) -> Option<V> {
        let at = self
            .entries
            .iter()
            .rposition(|(k, v, _)| k == key && fits(v))?;
        Some(self.entries.remove(at).1)
    }

    /// Keeps `value` of `bytes` bytes under `key`, dropping the oldest values to stay within
    /// the budget; a value larger than the whole budget is dropped at once.
    pub(crate) fn put(&mut self, key: K, value: V, bytes: u64) {
        if bytes > self.budget {
            return;
        }
        self.entries.push((key, value, bytes));
        self.shrink();
    }

    /// Bytes of the values kept.
    pub(crate) fn bytes(&self) -> u64 {
        self.entries.iter().map(|(_, _, b)| b).sum()
    }

    /// Drops every value.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Sets the budget, dropping the oldest values past it.
    pub(crate) fn set_budget(&mut self, budget: u64) {
        self.budget = budget;
        self.shrink();
    }

    fn shrink(&mut self) {
        let mut bytes = self.bytes();
        while bytes > self.budget || self.entries.len() > MAX_ENTRIES {
            bytes -= self.entries.remove(0).2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_the_budget_dropping_the_oldest() {
        let mut pool = Pool::new(100);
        pool.put(1, "a", 40);
        pool.put(2, "b", 40);
        pool.put(3, "c", 40);
        assert_eq!(pool.bytes(), 80);
        assert_eq!(pool.take(&1, |_| true), None);
        assert_eq!(pool.take(&2, |_| true), Some("b"));
        pool.put(4, "d", 101);
        assert_eq!(pool.bytes(), 40);
        pool.set_budget(10);
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn takes_the_newest_that_fits() {
        let mut pool = Pool::new(1000);
        pool.put(1, 10, 1);
        pool.put(1, 20, 1);
        pool.put(1, 30, 1);
        assert_eq!(pool.take(&1, |v| *v < 25), Some(20));
        assert_eq!(pool.take(&1, |_| true), Some(30));
        pool.clear();
        assert_eq!(pool.take(&1, |_| true), None);
    }

    #[test]
    fn bounds_the_entry_count() {
        let mut pool = Pool::new(u64::MAX);
        for i in 0..1000 {
            pool.put(i, (), 1);
        }
        assert_eq!(pool.bytes(), MAX_ENTRIES as u64);
    }
}
