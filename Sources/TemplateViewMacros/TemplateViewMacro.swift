import SwiftCompilerPlugin
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@TemplateView` on a view struct: makes it a `TemplateView` whose `field(_:)` answers each of
/// its stored properties by name — the table Mustache reads instead of reflecting the value
/// (`Dashboard/Pages/TemplateFields.swift`), written by the compiler so that a view's change is
/// one edit.
public struct TemplateViewMacro: ExtensionMacro {
    public static func expansion(
        of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax, providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax], in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        guard declaration.is(StructDeclSyntax.self) else {
            throw MacroError("@TemplateView applies to a struct")
        }
        var names: [String] = []
        for member in declaration.memberBlock.members {
            guard let variable = member.decl.as(VariableDeclSyntax.self),
                !variable.modifiers.contains(where: { $0.name.tokenKind == .keyword(.static) })
            else { continue }
            for binding in variable.bindings {
                // Stored only: a computed property has a getter block (observers aside).
                if let accessors = binding.accessorBlock?.accessors {
                    if case .getter = accessors { continue }
                    if case .accessors(let list) = accessors,
                        list.contains(where: { $0.accessorSpecifier.tokenKind == .keyword(.get) })
                    {
                        continue
                    }
                }
                if let identifier = binding.pattern.as(IdentifierPatternSyntax.self) {
                    names.append(identifier.identifier.trimmedDescription)
                }
            }
        }
        let cases = names.map { "case \"\($0)\": self.\($0)" }.joined(separator: "\n")
        let decl: DeclSyntax = """
            extension \(type.trimmed): TemplateView {
                func field(_ name: String) -> Any? {
                    switch name {
                    \(raw: cases)
                    default: nil
                    }
                }
            }
            """
        guard let ext = decl.as(ExtensionDeclSyntax.self) else { throw MacroError("cannot write the extension") }
        return [ext]
    }
}

struct MacroError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
struct TemplateViewPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [TemplateViewMacro.self]
}
