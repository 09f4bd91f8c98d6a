import Mustache

/// Makes a view struct a `TemplateView` answering each of its stored properties by name
/// (`TemplateViewMacros`): the table is the compiler's, so a view changes in one place.
@attached(extension, conformances: TemplateView, names: named(field))
macro TemplateView() = #externalMacro(module: "TemplateViewMacros", type: "TemplateViewMacro")

/// A view the templates read by name. Mustache asks `child(named:)` of a `MustacheParent`
/// instead of reflecting the value with `Mirror`, which cost about 20 µs a lookup: a profile
/// with 1,000 keys (some 20,000 lookups) took 400 ms to render, and takes a few ms this way
/// (`bench-pages`, bench/README.md). Each view answers its stored properties in `field(_:)`;
/// in debug builds — every test — a property a template asks for and `field(_:)` forgets
/// stops the process, so a page never silently renders a blank.
protocol TemplateView: MustacheParent {
    /// The stored property `name`, or nil for a name this view does not have (Mustache then
    /// looks further up the context stack) or a nil optional.
    func field(_ name: String) -> Any?
}

extension TemplateView {
    func child(named name: String) -> Any? {
        let value = field(name)
        assert(value != nil || !Self.stores(name, in: self), "\(Self.self).field(_:) does not answer \(name)")
        return value
    }

    /// Whether `view` has a stored property `name` holding a value (debug checks only).
    static func stores(_ name: String, in view: Self) -> Bool {
        Mirror(reflecting: view).children.contains { child in
            guard child.label == name else { return false }
            let mirror = Mirror(reflecting: child.value)
            return mirror.displayStyle != .optional || !mirror.children.isEmpty
        }
    }
}
