import Foundation
import PackagePlugin

/// Builds the dashboard's templates, stylesheet and scripts (`gateway/dashboard/`) into the
/// target that uses this plugin, as `EmbeddedFiles.files` (path → bytes), so that `lumen serve`
/// needs no file beside it and finds its pages from any working directory. The files stay
/// plain files in the repository; every build embeds their current contents.
@main
struct EmbedFiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL.appending(path: "gateway/dashboard")
        // The files, and the folders that hold them (a file added changes its folder's
        // modification time). SwiftPM evaluates this plugin again when the target's files change,
        // which include these through `Sources/Dashboard/Site`, a link to gateway/dashboard
        // declared as the target's resource; the tool lists the folder itself in any case.
        var inputs: [URL] = [root]
        if let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .isDirectoryKey]) {
            for case let url as URL in walk where !url.lastPathComponent.hasPrefix(".") {
                inputs.append(url)
            }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding gateway/dashboard into \(target.name)",
                executable: try context.tool(named: "embed-files").url,
                arguments: [output.path, root.path],
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
