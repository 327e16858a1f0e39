//! Properties of `auto_workers!()` and `#[auto_discover]` over generated
//! arguments: the directory argument is read or reported, never a panic,
//! and the macros always return tokens of the shape their caller needs.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::scan::temp::TempDir;
use super::{Caller, Env, auto_discover_in, auto_workers_in, dir_arg};
use crate::ctxt::Ctxt;
use crate::testing::{self, Tokens, garbage, garbage_with};

proptest! {
    #![proptest_config(testing::config(512))]

    #[test]
    fn the_directory_argument_is_read_or_reported(args in garbage(), discover in any::<bool>()) {
        let caller = if discover { Caller::AutoDiscover } else { Caller::AutoWorkers };
        let mut cx = Ctxt::new();
        let Ok(arg) = catch_unwind(AssertUnwindSafe(|| dir_arg(caller, args.stream(), &mut cx))) else {
            return Err(TestCaseError::fail("reading the argument panicked"));
        };
        prop_assert_eq!(arg.is_some(), !cx.has_errors());
        if let Some(Some(dir)) = arg {
            prop_assert!(!dir.value().is_empty());
        }
    }
}

/// Directories relative to the fixture's package: the real one, a missing
/// one, a file, an empty one. The macros list what a literal names, so the
/// full-pipeline property never lets a generated string leave the package.
fn dir() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "src/workers",
            "./src/workers/",
            "src/workers/nested",
            "src/jobs",
            "src/missing",
            "src/file.rs",
            "",
            "a b",
            "\u{e9}",
        ][..],
    )
    .prop_map(str::to_owned)
}

fn item() -> impl Strategy<Value = Tokens> {
    prop_oneof![
        1 => prop::sample::select(
            &[
                "fn main() {}",
                "#[tokio::main] async fn main() -> Result<()> { Ok(()) }",
                "pub(crate) async fn start(x: u8) -> u8 where u8: Copy { x }",
                "fn main();",
                "struct Main;",
                "impl Main {}",
                "",
            ][..],
        )
        .prop_map(Tokens::source),
        1 => garbage_with(dir().boxed()),
    ]
}

#[test]
fn the_discovery_macros_always_return_their_shape_of_tokens() {
    let manifest = TempDir::new("properties");
    manifest
        .file(
            "src/workers/email.rs",
            "pub async fn install() -> Result<()> { Ok(()) }",
        )
        .file(
            "src/workers/send-email.rs",
            "#[worker] async fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }",
        )
        .file(
            "src/workers/nested/wrong.rs",
            "pub fn install() -> Result<()> { Ok(()) }",
        )
        .file("src/jobs/mod.rs", "")
        .file("src/file.rs", "");
    let env_dir = prop::option::of(dir());
    let strategy = (garbage_with(dir().boxed()), env_dir, item());
    // A hand-made runner (the fixture is made once, not per case), told its
    // file so failures are saved like the `proptest!` ones.
    let config = Config {
        source_file: Some(file!()),
        ..testing::config(128)
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(args, workers_dir, item)| {
        let env = Env {
            manifest_dir: Some(manifest.path().to_owned()),
            package: Some("app".to_owned()),
            workers_dir: workers_dir.filter(|dir| !dir.is_empty()).map(Into::into),
        };

        let Ok(out) = catch_unwind(AssertUnwindSafe(|| auto_workers_in(args.stream(), &env)))
        else {
            return Err(TestCaseError::fail("auto_workers!() panicked"));
        };
        // Success or not, it is an expression the caller's code can hold.
        if let Err(err) = syn::parse2::<syn::Expr>(out.clone()) {
            return Err(TestCaseError::fail(format!(
                "auto_workers!() gave no expression: {err}\n{out}"
            )));
        }

        let item = item.stream();
        let Ok(out) = catch_unwind(AssertUnwindSafe(|| {
            auto_discover_in(args.stream(), item.clone(), &env)
        })) else {
            return Err(TestCaseError::fail("#[auto_discover] panicked"));
        };
        prop_assert!(
            out.to_string().starts_with(&item.to_string()),
            "the item is not kept first: {}",
            out
        );
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
