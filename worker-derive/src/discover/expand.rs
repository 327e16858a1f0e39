//! Output of `auto_workers!()` and `#[auto_discover]`.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use syn::LitStr;

use super::Found;

/// A block expression that declares the files and evaluates to the closure
/// `WorkerManager` runs to call their `install()`s:
///
/// ```text
/// {
///     #[allow(non_snake_case, dead_code, unused_imports, clippy::duplicate_mod)]
///     mod __worker_files {
///         #[path = "/abs/src/workers/email.rs"] pub mod email;
///     }
///     fn __install_0() -> ::worker_core::__private::BoxFuture {
///         ::std::boxed::Box::pin(__worker_files::email::install())
///     }
///     static __WORKER_INSTALLS: [::worker_core::__private::InstallRegistration; 1] = [
///         ::worker_core::__private::InstallRegistration { file: "src/workers/email.rs", path: "/abs/src/workers/email.rs", install: __install_0 },
///     ];
///     move |manager: ::worker_core::WorkerManager| ::worker_core::__private::run_installs(manager, &__WORKER_INSTALLS)
/// }
/// ```
///
/// A `#[path]` module may be declared inside a block (only pathless file
/// modules can't), and the paths are absolute, so this works from any file
/// and any position an expression can take.
pub(super) fn auto_workers(found: &[Found]) -> TokenStream {
    let files = Ident::new("__worker_files", Span::call_site());
    let modules = module_block(&files, found);

    let installs: Vec<&Found> = found.iter().filter(|file| file.has_install).collect();
    let shims: Vec<Ident> = (0..installs.len())
        .map(|index| format_ident!("__install_{}", index))
        .collect();
    let count = Literal::usize_unsuffixed(installs.len());
    let registrations = installs
        .iter()
        .zip(&shims)
        .map(|(file, shim)| registration(file, shim));
    let shim_fns = installs
        .iter()
        .zip(&shims)
        .map(|(file, shim)| install_shim(&files, file, shim));

    quote! {
        {
            #modules
            #(#shim_fns)*
            static __WORKER_INSTALLS: [::worker_core::__private::InstallRegistration; #count] = [
                #(#registrations),*
            ];
            move |manager: ::worker_core::WorkerManager| {
                ::worker_core::__private::run_installs(manager, &__WORKER_INSTALLS)
            }
        }
    }
}

/// `errors` in place of the expression, next to a closure of the usual type
/// so code around the call doesn't grow errors of its own.
pub(super) fn auto_workers_failed(errors: TokenStream) -> TokenStream {
    quote! {
        {
            #errors
            move |manager: ::worker_core::WorkerManager| {
                ::worker_core::__private::run_installs(manager, &[])
            }
        }
    }
}

/// The function unchanged, the file modules beside it, and one
/// `InstallRegistration` per `install()` submitted to `inventory`:
///
/// ```text
/// #[tokio::main] async fn main() { … }
/// #[allow(non_snake_case, dead_code, unused_imports, clippy::duplicate_mod)]
/// mod __auto_discovered_workers {
///     #[path = "/abs/src/workers/email.rs"] pub mod email;
/// }
/// const _: () = {
///     fn __install() -> ::worker_core::__private::BoxFuture {
///         ::std::boxed::Box::pin(__auto_discovered_workers::email::install())
///     }
///     ::worker_core::__private::inventory::submit! {
///         ::worker_core::__private::InstallRegistration { file: "src/workers/email.rs", path: "/abs/src/workers/email.rs", install: __install }
///     }
/// };
/// ```
pub(super) fn auto_discover(item: TokenStream, found: &[Found]) -> TokenStream {
    let files = Ident::new("__auto_discovered_workers", Span::call_site());
    let modules = module_block(&files, found);
    let shim = Ident::new("__install", Span::call_site());
    let submissions = found.iter().filter(|file| file.has_install).map(|file| {
        let install_shim = install_shim(&files, file, &shim);
        let registration = registration(file, &shim);
        quote! {
            const _: () = {
                #install_shim
                ::worker_core::__private::inventory::submit! { #registration }
            };
        }
    });
    quote! {
        #item
        #modules
        #(#submissions)*
    }
}

fn module_block(name: &Ident, found: &[Found]) -> TokenStream {
    let declarations = found.iter().map(|file| {
        let path = LitStr::new(&file.path, Span::call_site());
        let module = &file.module;
        quote!(#[path = #path] pub mod #module;)
    });
    quote! {
        #[doc(hidden)]
        // `duplicate_mod`: `auto_workers!()` and `#[auto_discover]` may both
        // declare the same files; the runtime dedupes what they register.
        #[allow(non_snake_case, dead_code, unused_imports, clippy::duplicate_mod)]
        mod #name {
            #(#declarations)*
        }
    }
}

fn install_shim(files: &Ident, file: &Found, shim: &Ident) -> TokenStream {
    let module = &file.module;
    quote! {
        fn #shim() -> ::worker_core::__private::BoxFuture {
            ::std::boxed::Box::pin(#files::#module::install())
        }
    }
}

fn registration(file: &Found, shim: &Ident) -> TokenStream {
    let shown = LitStr::new(&file.file, Span::call_site());
    let path = LitStr::new(&file.path, Span::call_site());
    quote! {
        ::worker_core::__private::InstallRegistration {
            file: #shown,
            path: #path,
            install: #shim,
        }
    }
}
