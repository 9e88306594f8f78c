//! Every transport serves a query through one seam, `dns::serving::Answering` (snapshot,
//! answer, counters, query log): the answer path itself, `respond()`, is called there and
//! nowhere else on the serving side (`explain` and the speed measurements run it on a snapshot
//! of their own). Checked on the source, read with `syn`.

use std::collections::BTreeSet;
use std::path::Path;

use syn::visit::Visit;

/// Counts the calls of a free function named `respond` (or `respond_pending`, the same path
/// leaving a reply that waits for a proof to the caller).
struct Calls(usize);

impl<'ast> Visit<'ast> for Calls {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func
            && p.path
                .segments
                .last()
                .is_some_and(|s| s.ident == "respond" || s.ident == "respond_pending")
        {
            self.0 += 1;
        }
        syn::visit::visit_expr_call(self, call);
    }
}

fn callers(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            callers(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).expect("read file");
            let file = syn::parse_file(&text).expect("parse file");
            let mut calls = Calls(0);
            calls.visit_file(&file);
            if calls.0 > 0 {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(rel.display().to_string());
            }
        }
    }
}

#[test]
fn the_answer_path_is_called_from_the_serving_seam_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = BTreeSet::new();
    callers(&root.join("src"), root, &mut found);
    let want: BTreeSet<String> = [
        // `respond` is `respond_pending` with a reply that waits for a proof sent as NXDOMAIN.
        "src/dns/answer.rs",
        "src/dns/answer_speed.rs",
        "src/dns/presign_speed.rs",
        "src/dns/serving.rs",
        "src/explain.rs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, want);
}
