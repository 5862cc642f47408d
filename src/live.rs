//! A value swapped as a whole on reload: readers take the current `Arc` and
//! keep it for as long as they work with it, so a reload never changes
//! anything under a running transaction.

use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live(RwLock::new(Arc::new(value)))
    }

    pub fn current(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_value_across_a_replace() {
        let live = Live::new(1);
        let held = live.current();
        live.replace(2);
        assert_eq!((*held, *live.current()), (1, 2));
    }
}
