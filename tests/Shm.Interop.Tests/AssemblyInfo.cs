using Xunit;

// Tests compare the process's own /proc/self/maps before and after; a test running beside
// them could map or unmap at the same moment, so they run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
