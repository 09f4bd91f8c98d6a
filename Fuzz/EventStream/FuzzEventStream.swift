import FuzzChecks

#if FUZZING
/// libFuzzer's entry point (scripts/fuzz.sh builds with -sanitize=fuzzer,address -DFUZZING).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    WireFormatChecks.eventStream(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// SwiftPM names an executable's entry point after its module; it hands over to libFuzzer.
@_cdecl("fuzz_eventstream_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    WireFormatChecks.runFuzzer(argc, argv, fuzzerTestOneInput)
}
#else
/// Built ordinarily: replays the files (or folders) given, to reproduce a crash.
@main enum Replay {
    static func main() throws { try WireFormatChecks.replay(CommandLine.arguments.dropFirst(), WireFormatChecks.eventStream) }
}
#endif
