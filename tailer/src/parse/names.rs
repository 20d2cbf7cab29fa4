//! [`NameMap`]: a small map from names (event types, field names) to values, searched on the
//! per-line hot path.

/// A map from names to values, searched by a word made of a name's length and first and last
/// bytes before any string comparison. For the handful to hundreds of short names of a
/// registry this beats a `BTreeMap` (a string comparison per level) and a `HashMap` (hashing
/// the whole name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameMap<V> {
    words: Vec<u32>,
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap { words: Vec::new(), entries: Vec::new() }
    }
}

impl<V> NameMap<V> {
    /// The length of a name and its first and last bytes, as one word.
    #[inline]
    fn word(name: &[u8]) -> u32 {
        match name {
            [] => 0,
            [first, .., last] | [first @ last] => {
                (name.len().min(0xffff) as u32) << 16 | u32::from(*first) << 8 | u32::from(*last)
            }
        }
    }

    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        let word = Self::word(name.as_bytes());
        self.words.iter().zip(&self.entries).position(|(&w, (n, _))| w == word && n == name)
    }

    /// The value of `name`.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<&V> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    /// Sets the value of `name`.
    pub(crate) fn insert(&mut self, name: String, value: V) {
        match self.position(&name) {
            Some(i) => self.entries[i].1 = value,
            None => {
                self.words.push(Self::word(name.as_bytes()));
                self.entries.push((name, value));
            }
        }
    }

    /// The value of `name`, inserted with `V::default()` when absent.
    pub(crate) fn get_or_insert_default(&mut self, name: &str) -> &mut V
    where
        V: Default,
    {
        let i = match self.position(name) {
            Some(i) => i,
            None => {
                self.insert(name.to_owned(), V::default());
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
}

impl<V> FromIterator<(String, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut map = NameMap::default();
        for (name, value) in iter {
            map.insert(name, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_its_names() {
        let names = ["a", "ab", "abcdefg", "abcdefgh", "axcdefgh", "ms_played", "ms_played_total", "é"];
        let map: NameMap<usize> = names.iter().enumerate().map(|(i, n)| (n.to_string(), i)).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(n), Some(&i), "{n}");
        }
        for n in
            ["", "b", "abc", "abcdef", "abcxefgh", "ms_playe", "ms_played_", "ms_played_totaL", "a\0", "e"]
        {
            assert_eq!(map.get(n), None, "{n:?}");
        }
    }

    #[test]
    fn insert_replaces_and_get_or_insert_default_adds() {
        let mut map = NameMap::default();
        map.insert("a".to_owned(), 1);
        map.insert("a".to_owned(), 2);
        *map.get_or_insert_default("b") += 5;
        *map.get_or_insert_default("a") += 1;
        assert_eq!((map.get("a"), map.get("b"), map.entries.len()), (Some(&3), Some(&5), 2));
    }
}
