using System;
using System.Globalization;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>include/shm/shm.h: it compiles strictly as C and C++, and its channel reader and writer hold to the .NET rules.</summary>
public sealed class ShmHeaderTests : IDisposable
{
    private static readonly Lazy<string> Victim = new(() => Sources.CompileC("victim", Sources.CVictim, flags: Sources.StrictC));
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Theory]
    [InlineData("cc", "-std=c11 -Wextra")]
    [InlineData("cc", "-std=gnu11 -Wextra")]
    [InlineData("g++", "-std=c++17 -Wextra")]
    public void The_header_compiles_with_every_warning_an_error_and_every_function_works(string compiler, string flags)
    {
        string program = Sources.CompileC("every", Sources.CEveryFunction, compiler, flags);

        using Child run = Child.Spawn(program, []);

        Assert.Equal(0, run.WaitOrFail().ExitCode);
    }

    [Fact]
    public void Every_message_size_fits_an_empty_lane_from_every_8_aligned_head_offset_in_C()
    {
        string program = Sources.CompileC("every-fit", Sources.CEveryFit, flags: Sources.StrictC);

        using Child run = Child.Spawn(program, []);

        Assert.Equal(0, run.WaitOrFail().ExitCode);
    }

    /// <summary>The .NET victims' table (ChannelHostilePeerTests), faced by a C reader, writer or opener.</summary>
    [Theory]
    [MemberData(nameof(BeforeAttach))]
    public void A_C_victim_reports_a_corruption_written_before_it_attached(string hostility)
    {
        Hostility h = Hostilities.Named(hostility);
        string name = _shm.UniqueName();
        using var g = GuardedChannel.Create(lanes: h.Lanes, name: name);
        using IDisposable? peer = h.Corrupt(g);
        string mode = h.Victim switch
        {
            Interop.Tests.Victim.Reader => "read",
            Interop.Tests.Victim.Writer => "write",
            _ => "open",
        };

        using Child victim = Child.Spawn(Victim.Value, ["/" + name, g.ChannelOffset.ToString(CultureInfo.InvariantCulture), mode]);
        ChildExit exit = victim.WaitOrFail(TimeSpan.FromSeconds(30));

        Assert.True(exit.Signal is null, $"the C victim died by signal {exit.Signal}");
        Assert.Equal(GuardedChannel.Corrupted, exit.ExitCode);
        if (h.Lanes > 1)
        {
            Assert.Equal(0, g.Bytes.ReadLane(1, ChannelBytes.Head));
        }
    }

    public static TheoryData<string> BeforeAttach => Hostilities.Names();
}
