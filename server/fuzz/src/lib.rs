//! What the fuzz targets of `server/fuzz` share: how a target cuts its
//! input into the reads a socket would deliver, and the optional-whitespace
//! trim that the header-value checks compare against. The targets
//! themselves are in `fuzz_targets/`; docs/fuzzing.md lists them.

/// Cuts `stream` into successive reads at the points `fractions` pick:
/// each byte `f` is the point `f`/256 of the way through the stream. The
/// points are sorted, so any fraction bytes give valid pieces (some of them
/// empty). Returns the pieces and the points.
pub fn cut<'a>(stream: &'a [u8], fractions: &[u8]) -> (Vec<&'a [u8]>, Vec<usize>) {
    let mut points: Vec<usize> = fractions
        .iter()
        .map(|&f| stream.len() * usize::from(f) / 256)
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut last = 0;
    for &p in &points {
        pieces.push(&stream[last..p]);
        last = p;
    }
    pieces.push(&stream[last..]);
    (pieces, points)
}

/// `s` without optional whitespace (SP, HTAB) at either end, as RFC 9110
/// trims field values.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
