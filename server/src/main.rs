//! The `kennel` binary: a thin shell over the library's command line.

/// mimalloc, for its size-segregated pages: glibc's allocator interleaves
/// each connection's long-lived blocks (its task, its socket registration)
/// with the short-lived ones of its first request, and the holes left
/// behind cost about a third again per idle connection (bench row f).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kennel::cli::main()
}
