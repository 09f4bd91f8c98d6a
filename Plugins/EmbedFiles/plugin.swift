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
        var files: [URL] = []
        if let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let url as URL in walk where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                if !url.lastPathComponent.hasPrefix(".") { files.append(url) }
            }
        }
        files.sort { $0.path < $1.path }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding gateway/dashboard (\(files.count) files) into \(target.name)",
                executable: try context.tool(named: "embed-files").url,
                arguments: [output.path, root.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output])
        ]
    }
}
