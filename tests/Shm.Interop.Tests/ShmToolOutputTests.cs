using System;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// What the shm tool prints: names escaped wherever they are printed (exact in JSON), owners as
/// the name service knows them, and only regular files as segments.
/// </summary>
public sealed partial class ShmToolOutputTests : IDisposable
{
    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    [Fact]
    public void A_name_with_a_newline_and_tabs_cannot_forge_a_row_and_json_keeps_it_exact()
    {
        string real = _shm.UniqueName();
        string forger = $"{real}\n{real}-forged\t4096\t0600\troot\t1s\torphan\n    4096 0600 root 1s orphan - - - - {real}-forged";
        using var region = SharedRegion.CreateNamed(forger, 4096);

        ToolRun list = ShmTool.Run("ls");
        ToolRun json = ShmTool.Run("ls", "--json");

        Assert.True(list.Status == 0, list.ToString());
        string[] rows = [.. list.Output.Split('\n').Where(line => line.Contains(real, StringComparison.Ordinal))];
        string row = Assert.Single(rows);
        Assert.EndsWith($@"{real}\n{real}-forged\t4096\t0600\troot\t1s\torphan\n    4096 0600 root 1s orphan - - - - {real}-forged", row, StringComparison.Ordinal);
        Assert.Equal(forger, json.Segment(forger).GetProperty("name").GetString());
    }

    [Fact]
    public void An_escape_sequence_in_a_name_reaches_no_output_raw_not_ls_stat_nor_errors()
    {
        string name = _shm.UniqueName() + "\x1b[2J\x1b]0;owned\x07\u202eevil\u0085";
        using var region = SharedRegion.CreateNamed(name, 4096);
        string escaped = name[..name.IndexOf('\x1b', StringComparison.Ordinal)] + @"\x1b[2J\x1b]0;owned\x07\u202eevil\u0085";

        ToolRun[] runs =
        [
            ShmTool.Run("ls"),
            ShmTool.Run("stat", name),
            ShmTool.Run("rm", name), // in use: refused, named
            ShmTool.Run("stat", name + "-missing\x1b[31m"),
            ShmTool.Run("stat", "a/\x1b[31m"),
        ];

        foreach (ToolRun run in runs)
        {
            Assert.DoesNotContain(run.Output + run.Error, c => c is '\x1b' or '\x07' or '\u202e' or '\u0085');
        }
        Assert.Contains(escaped, runs[0].Output, StringComparison.Ordinal);
        Assert.Contains($"name:     {escaped}\n", runs[1].Output, StringComparison.Ordinal);
        Assert.Contains($"not removing '{escaped}': in use by {Environment.ProcessId}", runs[2].Error, StringComparison.Ordinal);
        Assert.Contains(@"-missing\x1b[31m': No such segment", runs[3].Error, StringComparison.Ordinal);
        Assert.Contains(@"cannot stat 'a/\x1b[31m': not a segment name", runs[4].Error, StringComparison.Ordinal);
        Assert.True(DevShm.Exists(name));
    }

    [Fact]
    public void FIFOs_sockets_and_directories_are_not_segments_ls_leaves_them_out_and_stat_and_rm_refuse_at_once()
    {
        string fifo = _shm.UniqueName(), socket = _shm.UniqueName(), directory = _shm.UniqueName(), segment = _shm.UniqueName();
        Assert.Equal(0, mkfifo(DevShm.PathOf(fifo), 0x1B6));
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(DevShm.PathOf(socket)));
        Directory.CreateDirectory(DevShm.PathOf(directory));
        using var region = SharedRegion.CreateNamed(segment, 4096);
        try
        {
            ToolRun list = ShmTool.Run("ls", "--json");
            ToolRun plain = ShmTool.Run("ls");
            ToolRun stat = ShmTool.Run("stat", fifo); // opening a FIFO to read would wait for a writer for ever
            ToolRun rm = ShmTool.Run("rm", "--yes", socket);

            Assert.True(list.Status == 0, list.ToString());
            list.Segment(segment);
            foreach (string other in new[] { fifo, socket, directory })
            {
                Assert.DoesNotContain(other, list.Output, StringComparison.Ordinal);
                Assert.DoesNotContain(other, plain.Output, StringComparison.Ordinal);
            }
            Assert.True(stat.Status == 1, stat.ToString());
            Assert.Contains($"cannot stat '{fifo}': a FIFO in /dev/shm, not a shared memory segment", stat.Error, StringComparison.Ordinal);
            Assert.True(rm.Status == 1, rm.ToString());
            Assert.Contains($"cannot remove '{socket}': a socket in /dev/shm", rm.Error, StringComparison.Ordinal);
            Assert.True(File.Exists(DevShm.PathOf(socket)));
        }
        finally
        {
            File.Delete(DevShm.PathOf(fifo));
            File.Delete(DevShm.PathOf(socket));
            Directory.Delete(DevShm.PathOf(directory));
        }
    }

    /// <summary>
    /// A user only the name service knows (a systemd userdb record, as LDAP or SSSD users are: not
    /// in /etc/passwd), in a private mount namespace with its own /run and nsswitch.conf: the
    /// owner shows by name; a uid nobody knows shows as its number.
    /// </summary>
    [NameServiceFact]
    public void Owners_come_from_the_name_service_not_from_etc_passwd()
    {
        const int Known = 61234, Unknown = 61235;
        Assert.DoesNotContain($":{Known}:", File.ReadAllText("/etc/passwd"), StringComparison.Ordinal);
        string ldapLike = _shm.UniqueName(), stranger = _shm.UniqueName();
        using var a = SharedRegion.CreateNamed(ldapLike, 4096);
        using var b = SharedRegion.CreateNamed(stranger, 4096);
        ShmTool.Chown(DevShm.PathOf(ldapLike), Known, Known);
        ShmTool.Chown(DevShm.PathOf(stranger), Unknown, Unknown);
        string directory = Directory.CreateTempSubdirectory("shm-nss-").FullName;
        try
        {
            string setup = string.Join(" && ", [
                "mount -t tmpfs none /run",
                "mkdir /run/userdb",
                $$"""printf '{"userName":"shmtestldap","uid":{{Known}},"gid":{{Known}}}' > /run/userdb/shmtestldap.user""",
                $"ln -s shmtestldap.user /run/userdb/{Known}.user",
                "printf 'passwd: files systemd\\ngroup: files systemd\\n' > /run/nsswitch.conf",
                "mount --bind /run/nsswitch.conf /etc/nsswitch.conf",
                $"getent passwd {Known} > {ShmTool.Quote(directory)}/getent",
                $"{ShmTool.Command("ls", "--json")} > {ShmTool.Quote(directory)}/out",
            ]);
            using (Child session = Child.Spawn("/bin/sh", ["-c", $"exec unshare -m sh -c {ShmTool.Quote(setup)} 2> {ShmTool.Quote(directory)}/err"]))
            {
                Assert.True(session.WaitOrFail().Succeeded, File.ReadAllText(Path.Combine(directory, "err")));
            }
            Assert.StartsWith($"shmtestldap:x:{Known}:", File.ReadAllText(Path.Combine(directory, "getent")), StringComparison.Ordinal);
            var run = new ToolRun(0, File.ReadAllText(Path.Combine(directory, "out")), File.ReadAllText(Path.Combine(directory, "err")));
            Assert.Equal("shmtestldap", run.Segment(ldapLike).GetProperty("owner").GetString());
            Assert.Equal($"{Unknown}", run.Segment(stranger).GetProperty("owner").GetString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int mkfifo(string path, int mode);
}

/// <summary>A root fact that also needs systemd's NSS module (libnss_systemd), which reads user records from /run/userdb.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class NameServiceFactAttribute : FactAttribute
{
    public NameServiceFactAttribute()
    {
        string? root = new RootFactAttribute().Skip;
        bool found = new[] { "/lib", "/usr/lib", "/lib64", "/usr/lib64" }
            .Where(Directory.Exists)
            .Any(directory => Directory.EnumerateFiles(directory, "libnss_systemd.so.2", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 1, IgnoreInaccessible = true }).Any());
        Skip = root ?? (found ? null : "needs libnss_systemd.so.2 (systemd's NSS module) to stand in for LDAP/SSSD");
    }
}
