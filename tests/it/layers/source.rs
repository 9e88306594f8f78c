//! The library's source as the structure rules read it: the module tree from `src/lib.rs`
//! down (`mod` items, `#[path]`, inline modules), and every path each file names — in code,
//! in macro arguments and in `use` items, groups flattened — resolved to where it lands
//! (`crate::`, `self::`, `super::` however many times, a child module's name, or a name a `use`
//! brought in).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path from the crate root: `["health", "udp", "engine"]`.
pub(super) type ModPath = Vec<String>;

/// One path as written, and the module it is written in.
#[derive(Debug)]
pub(super) struct Named {
    /// The file's module, or an inline module inside the file.
    pub(super) scope: ModPath,
    pub(super) segments: Vec<String>,
    /// For a path of a `use` item: the name it brings into `scope` (`None` for a glob).
    pub(super) import: Option<Option<String>>,
}

/// One file of the library.
pub(super) struct File {
    /// From the crate root: `src/config/regions.rs`.
    pub(super) rel: PathBuf,
    /// The module the file is.
    pub(super) module: ModPath,
    pub(super) named: Vec<Named>,
    /// The names `use` items bring into each scope of the file, and the paths they stand for.
    imports: BTreeMap<(ModPath, String), Vec<String>>,
    /// The modules whose names a glob (`use super::*`) brings into each scope.
    globs: BTreeMap<ModPath, Vec<Vec<String>>>,
    pub(super) lines: usize,
}

/// A `mod name;` whose contents are in another file.
struct ModDecl {
    /// The module it is declared in (the file's, or an inline module inside it).
    parent: ModPath,
    name: String,
    /// The `#[path = "..."]` attribute, if any.
    path: Option<String>,
}

#[derive(Default)]
pub(super) struct Crate {
    pub(super) files: Vec<File>,
    /// Every module (from a file or inline) and its child modules.
    pub(super) children: BTreeMap<ModPath, BTreeSet<String>>,
}

impl Crate {
    /// Reads the library under `root` (the directory of `Cargo.toml`) from `src/lib.rs` down.
    pub(super) fn read(root: &Path) -> Crate {
        let mut c = Crate::default();
        let src = root.join("src");
        let mut queue = vec![(src.join("lib.rs"), ModPath::new(), src.clone())];
        while let Some((path, module, dir)) = queue.pop() {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            for d in c.add(rel, module.clone(), &text) {
                let mut base = dir.clone();
                base.extend(&d.parent[module.len()..]);
                let file = match &d.path {
                    Some(p) => path.parent().expect("a directory").join(p),
                    None if base.join(format!("{}.rs", d.name)).exists() => {
                        base.join(format!("{}.rs", d.name))
                    }
                    None => base.join(&d.name).join("mod.rs"),
                };
                let child_dir = if file.ends_with("mod.rs") {
                    file.parent().expect("a directory").to_path_buf()
                } else {
                    file.with_extension("")
                };
                let mut child = d.parent.clone();
                child.push(d.name);
                queue.push((file, child, child_dir));
            }
        }
        c.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        c
    }

    /// A crate made of the given `(module, text)` files (for testing the rules themselves).
    pub(super) fn of(files: &[(&str, &str)]) -> Crate {
        let mut c = Crate::default();
        for (module, text) in files {
            let module: ModPath = module
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if let Some((name, parent)) = module.split_last() {
                let siblings = c.children.entry(parent.to_vec()).or_default();
                siblings.insert(name.clone());
            }
            let rel = PathBuf::from(format!("src/{}.rs", module.join("/")));
            c.add(rel, module, text);
        }
        c
    }

    /// Parses one file into the crate; returns the modules it declares in other files.
    fn add(&mut self, rel: PathBuf, module: ModPath, text: &str) -> Vec<ModDecl> {
        let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        self.children.entry(module.clone()).or_default();
        let mut scan = Scan {
            scope: module.clone(),
            named: Vec::new(),
            decls: Vec::new(),
            children: &mut self.children,
        };
        scan.visit_file(&ast);
        let (named, decls) = (scan.named, scan.decls);
        let mut imports = BTreeMap::new();
        let mut globs: BTreeMap<ModPath, Vec<Vec<String>>> = BTreeMap::new();
        for n in &named {
            match &n.import {
                Some(Some(name)) => {
                    let key = (n.scope.clone(), name.clone());
                    imports.entry(key).or_insert_with(|| n.segments.clone());
                }
                Some(None) => globs
                    .entry(n.scope.clone())
                    .or_default()
                    .push(n.segments.clone()),
                None => {}
            }
        }
        self.files.push(File {
            rel,
            module,
            named,
            imports,
            globs,
            lines: text.lines().count(),
        });
        decls
    }

    /// The path from the crate root that `n` (named in `file`) names: modules first, then
    /// perhaps an item; `None` when it does not start in this crate (`std::`, a local name, a
    /// dependency).
    pub(super) fn resolve(&self, file: &File, n: &Named) -> Option<ModPath> {
        self.resolve_in(file, &n.scope, &n.segments, n.import.is_some(), 0)
    }

    fn resolve_in(
        &self,
        file: &File,
        scope: &[String],
        segs: &[String],
        import: bool,
        depth: u8,
    ) -> Option<ModPath> {
        let first = segs.first()?.as_str();
        let (mut out, rest) = match first {
            "crate" => (ModPath::new(), &segs[1..]),
            "self" => (scope.to_vec(), &segs[1..]),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let keep = scope.len().checked_sub(ups)?;
                (scope[..keep].to_vec(), &segs[ups..])
            }
            // A child module by its name alone: in a `use`, or as the head of a longer path
            // (a module name alone is not a value).
            name if self.is_child(scope, name) && (import || segs.len() > 1) => {
                (scope.to_vec(), segs)
            }
            // A name a `use` brought in (`use super::regions;`, then `regions::x`), or a
            // module a glob brought in (`use super::*;`, then `regions::x`).
            name if segs.len() > 1 && depth < 8 => {
                let key = (scope.to_vec(), name.to_string());
                if let Some(to) = file.imports.get(&key) {
                    let base = self.resolve_in(file, scope, to, true, depth + 1)?;
                    (base, &segs[1..])
                } else {
                    let globs = file.globs.get(scope)?.iter();
                    let mut from =
                        globs.filter_map(|g| self.resolve_in(file, scope, g, true, depth + 1));
                    (from.find(|m| self.is_child(m, name))?, segs)
                }
            }
            _ => return None,
        };
        out.extend(rest.iter().cloned());
        Some(out)
    }

    pub(super) fn is_child(&self, module: &[String], name: &str) -> bool {
        self.children.get(module).is_some_and(|c| c.contains(name))
    }
}

/// Walks one file: paths, `use` trees, modules; attributes (doc links included) are not code.
struct Scan<'a> {
    scope: ModPath,
    named: Vec<Named>,
    decls: Vec<ModDecl>,
    children: &'a mut BTreeMap<ModPath, BTreeSet<String>>,
}

impl Scan<'_> {
    fn push(&mut self, segments: Vec<String>, import: Option<Option<String>>) {
        let scope = self.scope.clone();
        self.named.push(Named {
            scope,
            segments,
            import,
        });
    }

    /// Every path of a `use` tree, groups flattened; `a::{self}` is `a`.
    fn use_tree(&mut self, tree: &syn::UseTree, mut prefix: Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
            }
            syn::UseTree::Name(n) if n.ident == "self" => {
                let name = prefix.last().cloned();
                self.push(prefix, Some(name));
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                let name = prefix.last().cloned();
                self.push(prefix, Some(name));
            }
            syn::UseTree::Rename(r) => {
                if r.ident != "self" {
                    prefix.push(r.ident.to_string());
                }
                self.push(prefix, Some(Some(r.rename.to_string())));
            }
            syn::UseTree::Glob(_) => self.push(prefix, Some(None)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix.clone());
                }
            }
        }
    }

    /// Paths inside a macro's arguments: `a::b::c` runs of identifiers, in every group.
    fn tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let colons = |i: usize| {
            matches!(
                (tts.get(i), tts.get(i + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && b.as_char() == ':'
            )
        };
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Ident(first) => {
                    let mut segs = vec![first.to_string()];
                    let mut j = i + 1;
                    while colons(j) {
                        let Some(TokenTree::Ident(next)) = tts.get(j + 2) else {
                            break;
                        };
                        segs.push(next.to_string());
                        j += 3;
                    }
                    if segs.len() > 1 {
                        self.push(segs, None);
                    }
                    i = j;
                }
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        let siblings = self.children.entry(self.scope.clone()).or_default();
        siblings.insert(name.clone());
        let Some((_, items)) = &m.content else {
            let path = m.attrs.iter().find_map(|a| match &a.meta {
                syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            });
            let parent = self.scope.clone();
            self.decls.push(ModDecl { parent, name, path });
            return;
        };
        self.scope.push(name);
        self.children.entry(self.scope.clone()).or_default();
        for item in items {
            self.visit_item(item);
        }
        self.scope.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&u.tree, Vec::new());
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.push(segs, None);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}
