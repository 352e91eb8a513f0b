using System;
using System.IO;

namespace Shm.TestSupport;

/// <summary>
/// The checked-out repository the test assembly was built from. Found by walking up from the
/// assembly, not from compile-time source paths: CI builds map those to <c>/_/</c>.
/// </summary>
public static class Repository
{
    /// <summary>The directory that holds <c>Shm.sln</c>.</summary>
    public static string Root { get; } = Find();

    /// <summary>A path inside the repository.</summary>
    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Shm.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("Shm.sln not found above the test assembly " + AppContext.BaseDirectory);
    }
}
