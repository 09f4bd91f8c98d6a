import Foundation
import FuzzChecks

#if FUZZING
/// libFuzzer's entry point (scripts/fuzz.sh builds with -sanitize=fuzzer,address -DFUZZING).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    WireFormatChecks.multipart(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// SwiftPM names an executable's entry point after its module; hand it to libFuzzer's driver.
@_cdecl("fuzz_multipart_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    WireFormatChecks.runFuzzer(argc, argv, fuzzerTestOneInput)
}
#else
/// Built ordinarily: replays the files (or folders of files) given as arguments, for
/// reproducing a crash the fuzzer reported.
@main
enum Replay {
    static func main() throws {
        for input in try WireFormatChecks.inputs(CommandLine.arguments.dropFirst()) {
            input.withUnsafeBytes { WireFormatChecks.multipart($0) }
        }
    }
}
#endif
