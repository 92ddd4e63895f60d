//! The `kennel` binary: a thin shell over the library's command line.

/// mimalloc, for its size-segregated pages: glibc's allocator interleaves
/// each connection's long-lived blocks (its task, its socket registration)
/// with the short-lived ones of its first request, and the holes left
/// behind cost about a third again per idle connection (bench row f).
/// Its version 2 (`v2`), without transparent huge pages (`no_thp`): at
/// 10,000 idle connections after a handler request, with the access log
/// on, RSS grows by about 960 bytes each (v3 with huge pages: 1,090), and
/// a server at rest takes 10 MiB instead of 24 (huge pages are committed
/// 2 MiB at a time, so they also make the growth jump in 2 MiB steps).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kennel::cli::main()
}
