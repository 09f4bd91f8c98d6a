import Foundation
import NIOCore

/// How many event loops NIO's shared group runs.
public enum EventLoopCount {
    /// One loop per CPU the process may run on (its affinity: `taskset`, a container's cpuset),
    /// unless `NIO_SINGLETON_GROUP_LOOP_COUNT` says otherwise. NIO counts the machine's CPUs:
    /// a process pinned to one of two cores then ran two loops on one core, which cost about a
    /// fifth more CPU per request (`bench/run.sh`). Call before anything uses NIO's shared group.
    public static func matchAvailableCPUs() {
        guard ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil, let count = availableCPUs() else { return }
        setenv("NIO_SINGLETON_GROUP_LOOP_COUNT", String(count), 1)
    }

    /// The CPUs this process may run on (`Cpus_allowed_list` in `/proc/self/status`, as
    /// `sched_getaffinity` sees them); nil where that is unknown.
    public static func availableCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var count = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = range.split(separator: "-").compactMap { Int($0) }
            guard let first = ends.first, let last = ends.last, last >= first else { return nil }
            count += last - first + 1
        }
        return count > 0 ? count : nil
    }
}
