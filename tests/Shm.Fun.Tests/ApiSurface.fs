/// The F# assembly's public surface, compared with the listing checked in beside this file: a change
/// to the surface fails here until PublicApi.Fun.txt is updated (SHM_UPDATE_API=1 rewrites it).
module Shm.Fun.Tests.ApiSurface

open System
open System.IO
open System.Reflection
open Expecto

let rec private name (t: Type) : string =
    let orName (s: string | null) =
        match s with
        | null -> t.Name
        | s -> s

    if t.IsGenericParameter then
        t.Name
    elif t.IsArray || t.IsByRef then
        match t.GetElementType() with
        | null -> t.Name
        | element -> name element + (if t.IsArray then "[]" else "&")
    elif t.IsGenericType then
        let bare = orName (t.GetGenericTypeDefinition().FullName)
        let bare = bare.Substring(0, bare.IndexOf '`')
        let arguments = t.GetGenericArguments() |> Array.map name |> String.concat ", "
        $"{bare}<{arguments}>"
    else
        orName t.FullName

let private describe (m: MemberInfo) =
    let parameters (ps: ParameterInfo[]) =
        ps |> Array.map (fun p -> name p.ParameterType) |> String.concat ", "

    match m with
    | :? ConstructorInfo as c -> Some $"  new({parameters (c.GetParameters())})"
    | :? MethodInfo as mi when not mi.IsSpecialName ->
        let generic =
            if mi.IsGenericMethod then
                "<" + (mi.GetGenericArguments() |> Array.map name |> String.concat ", ") + ">"
            else
                ""

        let kind = if mi.IsStatic then "static " else ""
        Some $"  {kind}{mi.Name}{generic}({parameters (mi.GetParameters())}) : {name mi.ReturnType}"
    | :? PropertyInfo as p -> Some $"  property {p.Name} : {name p.PropertyType}"
    | _ -> None

let listing () =
    let assembly = typeof<Shm.Fun.Scope>.Assembly

    [
        for t in assembly.GetExportedTypes() |> Array.sortBy name do
            yield $"type {name t}"

            yield!
                t.GetMembers(
                    BindingFlags.Public
                    ||| BindingFlags.Instance
                    ||| BindingFlags.Static
                    ||| BindingFlags.DeclaredOnly
                )
                |> Array.choose describe
                |> Array.sort
    ]

let private checkedIn () =
    Shm.TestSupport.Repository.PathOf("tests", "Shm.Fun.Tests", "PublicApi.Fun.txt")

[<Tests>]
let tests =
    test "the public surface of Shm.Fun matches PublicApi.Fun.txt" {
        let path = checkedIn ()
        let actual = listing ()

        if Environment.GetEnvironmentVariable "SHM_UPDATE_API" = "1" then
            File.WriteAllLines(path, actual)

        let expected = File.ReadAllLines path |> List.ofArray
        let added = actual |> List.except expected
        let removed = expected |> List.except actual

        Expect.isTrue
            (List.isEmpty added && List.isEmpty removed)
            $"The public surface changed. Added:\n{String.Join('\n', added)}\nRemoved:\n{String.Join('\n', removed)}\nReview, then run with SHM_UPDATE_API=1 to accept."
    }
